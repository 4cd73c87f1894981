// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file builtin_fp16.h
 * \brief Bit-exact IEEE-754 binary floating point narrowing / widening templates.
 *
 *   DST_T __truncXfYf2__<SRC_T, SRC_REP_T, SRC_SIG_BITS, DST_T, DST_REP_T, DST_SIG_BITS>(SRC_T a)
 *   DST_T __extendXfYf2__<SRC_T, SRC_REP_T, SRC_SIG_BITS, DST_T, DST_REP_T, DST_SIG_BITS>(SRC_T a)
 *
 * A format is described by its storage integer REP_T (total width = bits of
 * REP_T), its explicit significand width SIG_BITS, and the remaining bits are
 * sign (1) and exponent.  SRC_T / DST_T are the value types handed in / out;
 * they have the same size as the REP_T (e.g. float/uint32_t, or uint16_t bits
 * for half).  Example: float -> half is
 *   __truncXfYf2__<float, uint32_t, 23, uint16_t, uint16_t, 10>(x).
 *
 * Semantics (IEEE 754, default environment, no exceptions raised):
 *  - truncation rounds to nearest, ties to even; overflow gives +-inf;
 *    results below the destination's normal range become subnormals or +-0;
 *  - widening is exact (subnormal inputs are normalized);
 *  - inf stays inf; NaN stays NaN with the top payload bits kept; truncation
 *    returns a quiet NaN (as hardware conversions do).
 */
#ifndef TVM_3RDPARTY_COMPILER_RT_BUILTIN_FP16_H_
#define TVM_3RDPARTY_COMPILER_RT_BUILTIN_FP16_H_

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define TVM_FP_CONVERT_FUNC static inline __host__ __device__
#else
#define TVM_FP_CONVERT_FUNC static inline
#endif

namespace tvm_fp_convert_detail {
/*! \brief Layout constants of a binary interchange format stored in REP_T. */
template <typename REP_T, int SIG_BITS>
struct Format {
  static constexpr int kBits = static_cast<int>(sizeof(REP_T) * 8);
  static constexpr int kExpBits = kBits - SIG_BITS - 1;
  static constexpr int kExpMax = (1 << kExpBits) - 1;  // all-ones exponent: inf / NaN
  static constexpr int kBias = (1 << (kExpBits - 1)) - 1;
  static constexpr REP_T kOne = 1;
  static constexpr REP_T kImplicitBit = kOne << SIG_BITS;
  static constexpr REP_T kSigMask = kImplicitBit - 1;
  static constexpr REP_T kQuietBit = kImplicitBit >> 1;
  static constexpr REP_T kSignBit = kOne << (kBits - 1);
};
}  // namespace tvm_fp_convert_detail

/*! \brief Convert to a narrower floating point format (round to nearest even). */
template <typename SRC_T, typename SRC_REP_T, int SRC_SIG_BITS, typename DST_T, typename DST_REP_T,
          int DST_SIG_BITS>
TVM_FP_CONVERT_FUNC DST_T __truncXfYf2__(SRC_T a) {
  using S = tvm_fp_convert_detail::Format<SRC_REP_T, SRC_SIG_BITS>;
  using D = tvm_fp_convert_detail::Format<DST_REP_T, DST_SIG_BITS>;
  static_assert(sizeof(SRC_T) == sizeof(SRC_REP_T) && sizeof(DST_T) == sizeof(DST_REP_T),
                "value and representation types must have the same size");
  static_assert(SRC_SIG_BITS > DST_SIG_BITS && S::kExpBits >= D::kExpBits,
                "__truncXfYf2__ converts to a narrower format");
  constexpr int kSigDiff = SRC_SIG_BITS - DST_SIG_BITS;

  SRC_REP_T bits;
  std::memcpy(&bits, &a, sizeof(bits));
  const bool negative = (bits & S::kSignBit) != 0;
  const int exp = static_cast<int>((bits & ~S::kSignBit) >> SRC_SIG_BITS);
  const SRC_REP_T sig = bits & S::kSigMask;

  DST_REP_T out;
  if (exp == S::kExpMax) {
    if (sig == 0) {
      out = static_cast<DST_REP_T>(static_cast<DST_REP_T>(D::kExpMax) << DST_SIG_BITS);  // inf
    } else {
      // NaN: keep the leading payload bits, force quiet.
      out = static_cast<DST_REP_T>((static_cast<DST_REP_T>(D::kExpMax) << DST_SIG_BITS) |
                                   D::kQuietBit | static_cast<DST_REP_T>(sig >> kSigDiff));
    }
  } else {
    // value = full_sig * 2^(e - SRC_SIG_BITS); zero and subnormals have no implicit bit.
    const SRC_REP_T full_sig = exp != 0 ? (sig | S::kImplicitBit) : sig;
    const int e = (exp != 0 ? exp : 1) - S::kBias;
    const int dst_exp = e + D::kBias;  // biased destination exponent if the result is normal
    if (full_sig == 0) {
      out = 0;
    } else if (dst_exp >= D::kExpMax) {
      out = static_cast<DST_REP_T>(static_cast<DST_REP_T>(D::kExpMax) << DST_SIG_BITS);  // overflow
    } else {
      // Normal result: drop kSigDiff bits.  Subnormal result: drop (1 - dst_exp) more,
      // encoding with a zero exponent field.
      const int shift = dst_exp >= 1 ? kSigDiff : kSigDiff + (1 - dst_exp);
      if (shift > SRC_SIG_BITS + 1) {
        out = 0;  // below half of the smallest subnormal: rounds to zero
      } else {
        const SRC_REP_T kept = full_sig >> shift;
        const SRC_REP_T rest = full_sig & ((S::kOne << shift) - 1);
        const SRC_REP_T half = S::kOne << (shift - 1);
        // For normals, (exp << SIG_BITS) + kept (which still carries the implicit bit)
        // double counts one exponent step, hence dst_exp - 1.
        SRC_REP_T r = dst_exp >= 1
                          ? ((static_cast<SRC_REP_T>(dst_exp - 1) << DST_SIG_BITS) + kept)
                          : kept;
        // Round to nearest, ties to even; a carry correctly bumps the exponent
        // (max subnormal -> min normal, max finite -> inf).
        if (rest > half || (rest == half && (r & 1))) ++r;
        out = static_cast<DST_REP_T>(r);
      }
    }
  }
  if (negative) out = static_cast<DST_REP_T>(out | D::kSignBit);
  DST_T result;
  std::memcpy(&result, &out, sizeof(result));
  return result;
}

/*! \brief Convert to a wider floating point format (exact). */
template <typename SRC_T, typename SRC_REP_T, int SRC_SIG_BITS, typename DST_T, typename DST_REP_T,
          int DST_SIG_BITS>
TVM_FP_CONVERT_FUNC DST_T __extendXfYf2__(SRC_T a) {
  using S = tvm_fp_convert_detail::Format<SRC_REP_T, SRC_SIG_BITS>;
  using D = tvm_fp_convert_detail::Format<DST_REP_T, DST_SIG_BITS>;
  static_assert(sizeof(SRC_T) == sizeof(SRC_REP_T) && sizeof(DST_T) == sizeof(DST_REP_T),
                "value and representation types must have the same size");
  static_assert(DST_SIG_BITS > SRC_SIG_BITS && D::kExpBits >= S::kExpBits,
                "__extendXfYf2__ converts to a wider format");
  constexpr int kSigDiff = DST_SIG_BITS - SRC_SIG_BITS;

  SRC_REP_T bits;
  std::memcpy(&bits, &a, sizeof(bits));
  const bool negative = (bits & S::kSignBit) != 0;
  const int exp = static_cast<int>((bits & ~S::kSignBit) >> SRC_SIG_BITS);
  SRC_REP_T sig = bits & S::kSigMask;

  DST_REP_T out;
  if (exp == S::kExpMax) {
    // inf or NaN: all-ones exponent, payload (including the quiet bit) shifted up.
    out = (static_cast<DST_REP_T>(D::kExpMax) << DST_SIG_BITS) |
          (static_cast<DST_REP_T>(sig) << kSigDiff);
  } else if (exp != 0) {
    out = (static_cast<DST_REP_T>(exp - S::kBias + D::kBias) << DST_SIG_BITS) |
          (static_cast<DST_REP_T>(sig) << kSigDiff);
  } else if (sig == 0) {
    out = 0;
  } else {
    // Subnormal source: normalize so the leading one becomes the implicit bit.
    int e = 1 - S::kBias;
    while ((sig & S::kImplicitBit) == 0) {
      sig = static_cast<SRC_REP_T>(sig << 1);
      --e;
    }
    out = (static_cast<DST_REP_T>(e + D::kBias) << DST_SIG_BITS) |
          (static_cast<DST_REP_T>(sig & S::kSigMask) << kSigDiff);
  }
  if (negative) out |= D::kSignBit;
  DST_T result;
  std::memcpy(&result, &out, sizeof(result));
  return result;
}

#endif  // TVM_3RDPARTY_COMPILER_RT_BUILTIN_FP16_H_
