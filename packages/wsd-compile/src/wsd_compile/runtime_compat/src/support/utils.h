// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file src/support/utils.h
 * \brief Small string / hashing utilities used by the runtime.
 */
#ifndef TVM_SUPPORT_UTILS_H_
#define TVM_SUPPORT_UTILS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace tvm {
namespace support {

/*! \brief Whether `str` begins with `prefix`. */
inline bool StartsWith(const std::string& str, const std::string& prefix) {
  return str.size() >= prefix.size() && str.compare(0, prefix.size(), prefix) == 0;
}

/*! \brief Whether `str` ends with `suffix`. */
inline bool EndsWith(const std::string& str, const std::string& suffix) {
  return str.size() >= suffix.size() &&
         str.compare(str.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/*! \brief Whether `str` is a non-empty string of decimal digits (e.g. a CPU id). */
inline bool IsNumber(const std::string& str) {
  if (str.empty()) return false;
  for (char c : str) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

/*!
 * \brief Mix `value` into the running hash `seed` (boost-style combine).
 * \return The updated seed (also stored back into `seed`).
 */
inline size_t HashCombine(size_t& seed, size_t value) {  // NOLINT(runtime/references)
  seed ^= value + static_cast<size_t>(0x9e3779b97f4a7c15ULL) + (seed << 6) + (seed >> 2);
  return seed;
}

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_UTILS_H_
