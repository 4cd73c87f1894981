// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file tvm/support/cuda/nvtx.h
 * \brief NVTX profiling ranges.  This build has no CUDA/NVTX, so the scope is a no-op.
 */
#ifndef TVM_SUPPORT_CUDA_NVTX_H_
#define TVM_SUPPORT_CUDA_NVTX_H_

namespace tvm {
namespace support {

/*!
 * \brief RAII marker for a named profiling range (no-op without NVTX).
 *        Accepts any name type (const char*, std::string, ffi::String, ...).
 */
class NVTXScopedRange {
 public:
  template <typename Name>
  explicit NVTXScopedRange(const Name& /*name*/) {}
  NVTXScopedRange(const NVTXScopedRange&) = delete;
  NVTXScopedRange& operator=(const NVTXScopedRange&) = delete;
};

}  // namespace support
}  // namespace tvm

/*! \brief Open a profiling range named after the enclosing function (no-op). */
#ifndef TVM_NVTX_FUNC_SCOPE
#define TVM_NVTX_FUNC_SCOPE()
#endif

#endif  // TVM_SUPPORT_CUDA_NVTX_H_
