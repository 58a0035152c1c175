// The SIMD layer of the register-blocked kernels: GCC/Clang vector types of the
// target's register width (kVecBytes, kVecRegs), loads and stores, horizontal sums, a
// vector logarithm and max.
// Included only by nmf_blocked_impl.hpp, inside one instruction-set level's namespace
// (MATCHAR_ISA); the same rules apply (see nmf_blocked.hpp).
#ifndef MATCHAR_ISA
#error "define MATCHAR_ISA (the namespace of this level's kernels) before including"
#endif

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "nmf_blocked.hpp"

namespace matchar::spectral::detail::MATCHAR_ISA {
namespace {

// The target's vector registers: bytes each and how many.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64, kVecRegs = 32;
#elif defined(__AVX__)
constexpr int kVecBytes = 32, kVecRegs = 16;
#elif defined(__aarch64__)
constexpr int kVecBytes = 16, kVecRegs = 32;
#else
constexpr int kVecBytes = 16, kVecRegs = 16;
#endif

template <class T, int Bytes>
struct Simd {
  using I1 = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  typedef T V __attribute__((vector_size(Bytes)));
  typedef I1 I __attribute__((vector_size(Bytes)));
  static constexpr int n = Bytes / static_cast<int>(sizeof(T));
  static V splat(T s) { return V{} + s; }
};

template <class T>
using SimdT = Simd<T, kVecBytes>;

template <class To, class From>
inline To bitcast(const From& v) {
  static_assert(sizeof(To) == sizeof(From));
  To out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

// Loads and stores through a vector type aligned like T (one unaligned vector move; a
// memcpy of a 32-byte vector is expanded in 16-byte pieces by GCC's x86-64-v3 tuning,
// and in loops over K it sent the accumulators through the stack).
template <class V, class T>
inline V vload(const T* p) {
  typedef T U __attribute__((vector_size(sizeof(V)), aligned(alignof(T)), may_alias));
  return static_cast<V>(*reinterpret_cast<const U*>(p));
}
template <class V, class T>
inline void vstore(T* p, const V& v) {
  typedef T U __attribute__((vector_size(sizeof(V)), aligned(alignof(T)), may_alias));
  *reinterpret_cast<U*>(p) = static_cast<U>(v);
}
template <class V>
inline double hsum(const V& v) {
  double s = 0.0;
  for (std::size_t j = 0; j < sizeof(V) / sizeof(v[0]); ++j) s += static_cast<double>(v[j]);
  return s;
}

// The natural logarithm of positive normal numbers on every lane, branch-free: exponent
// from the bits, mantissa m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1))
// by its series (to s^9 in float, relative error < 1e-6; to s^15 in double, < 1e-13).
template <class T>
inline typename SimdT<T>::V vlog(typename SimdT<T>::V v) {
  using S = SimdT<T>;
  using V = typename S::V;
  using I = typename S::I;
  I bits = bitcast<I>(v);
  if constexpr (sizeof(T) == 4) {
    const I e = ((bits >> 23) & 0xff) - 127;
    bits = (bits & 0x007FFFFF) | 0x3F800000;
    V m = bitcast<V>(bits);
    const V high = m > S::splat(1.41421356f) ? S::splat(1.0f) : V{};
    m *= 1.0f - 0.5f * high;
    const V s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    const V p = s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
    return (__builtin_convertvector(e, V) + high) * 0.6931471805599453f + 2.0f * s * (1.0f + p);
  } else {
    const I e = ((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000FFFFFFFFFFFFFll) | 0x3FF0000000000000ll;
    V m = bitcast<V>(bits);
    const V high = m > S::splat(1.4142135623730951) ? S::splat(1.0) : V{};
    m *= 1.0 - 0.5 * high;
    const V s = (m - 1.0) / (m + 1.0), s2 = s * s;
    const V p =
        s2 * (1.0 / 3 +
              s2 * (1.0 / 5 +
                    s2 * (1.0 / 7 +
                          s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13 + s2 * (1.0 / 15)))))));
    return (__builtin_convertvector(e, V) + high) * 0.6931471805599453 + 2.0 * s * (1.0 + p);
  }
}

// max(a, b) per lane (b where a is NaN). x86's max instructions have exactly these
// semantics; GCC does not always find them for the comparison (a compare and a blend).
template <class V>
inline V vmax(V a, V b) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    // GCC's _mm512_max_ps warns about its own _mm512_undefined_ps: the builtin directly.
#if defined(__GNUC__) && !defined(__clang__)
    if constexpr (sizeof(a[0]) == 4)
      return (V)__builtin_ia32_maxps512_mask((__v16sf)a, (__v16sf)b, (__v16sf)a, (__mmask16)-1,
                                             _MM_FROUND_CUR_DIRECTION);
    else
      return (V)__builtin_ia32_maxpd512_mask((__v8df)a, (__v8df)b, (__v8df)a, (__mmask8)-1,
                                             _MM_FROUND_CUR_DIRECTION);
#else
    if constexpr (sizeof(a[0]) == 4)
      return (V)_mm512_max_ps((__m512)a, (__m512)b);
    else
      return (V)_mm512_max_pd((__m512d)a, (__m512d)b);
#endif
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(V) == 32) {
    if constexpr (sizeof(a[0]) == 4)
      return (V)_mm256_max_ps((__m256)a, (__m256)b);
    else
      return (V)_mm256_max_pd((__m256d)a, (__m256d)b);
  }
#endif
#if defined(__SSE2__)
  if constexpr (sizeof(V) == 16) {
    if constexpr (sizeof(a[0]) == 4)
      return (V)_mm_max_ps((__m128)a, (__m128)b);
    else
      return (V)_mm_max_pd((__m128d)a, (__m128d)b);
  }
#endif
  return a > b ? a : b;
}

}  // namespace
}  // namespace matchar::spectral::detail::MATCHAR_ISA
