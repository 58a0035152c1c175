// The register-blocked dense KL and HALS passes for small K, written once for every
// vector width. Included by one translation unit per instruction-set level, which
// defines MATCHAR_ISA (the namespace of that level's copy); see nmf_blocked.hpp for why
// nothing here may use an inline function or template from outside that namespace.
//
// A group of R pixels is converted once into a padded buffer (channels rounded up to a
// whole vector, zeros after the end); every vector of channels is then used by the R
// pixels and K components while it sits in registers: H (K vectors) is loaded once per
// R pixels, the block's H accumulator is read and written once per R pixels, and W H is
// never stored. Portable GCC/Clang vector extensions of the width of the target's
// registers (16 bytes SSE/NEON, 32 AVX2, 64 AVX-512); R from the register budget.
// The vector layer is nmf_simd_impl.hpp; the residual scan's kernels, which share this
// file's dispatch table, are residual_scan_impl.hpp.
// Kept as one file (about 620 lines): the KL, HALS, deviance and Gram passes are one
// family of register-blocked templates over the same packed buffers, workspace and
// dispatch table, instantiated together once per instruction-set level.
#ifndef MATCHAR_ISA
#error "define MATCHAR_ISA (the namespace of this level's kernels) before including"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "nmf_blocked.hpp"

#include "nmf_simd_impl.hpp"
#include "residual_scan_impl.hpp"

namespace matchar::spectral::detail::MATCHAR_ISA {
namespace {

// Rows per register group: the R x K partial sums of a group beside R loss (or sum of
// squares) vectors and ~4 temporaries (the logarithm's); the K vectors of H are reloaded
// as memory operands of the FMAs when they do not fit. AVX-512 (32 registers): 4 for
// K <= 4, 3 for K = 5..6, 2 for K = 7..8 (R = 4 is 5-10% slower at K = 8). With 16
// registers (AVX2, SSE) 4 for every K: the spilled partial sums stay in L1, and fewer
// reloads of H and of the H accumulator per pixel win. (2-core AMD EPYC Zen 4, 25,600 x
// 1024, 10 iterations (K = 4: 20), AVX2 copies, against the register-budget rule: 2 for
// K = 4 and 1 from K = 6: KL float32 K = 4 185 -> 162 ms, K = 6 146 -> 126, K = 8 193 ->
// 168; Frobenius K = 6 118 -> 80, K = 8 170 -> 110; K = 2..5 within +-8%. The SSE
// copies: KL within 5%, Frobenius K = 8 197 -> 150 ms.)
template <int K>
constexpr int group_rows() {
  if constexpr (kVecRegs <= 16) {
    return 4;
  } else {
    constexpr int fit = (kVecRegs - 4) / (K + 1);
    return fit < 1 ? 1 : fit > 4 ? 4 : fit;
  }
}

inline bool included(const std::uint8_t* mask, index_t i) { return mask == nullptr || mask[i]; }

// KL, the W half for R pixels (x: R rows of Cp, padded with zeros; H: K x Cp padded;
// w: R x K). num(r, k) = sum_c r_c H_kc with r = x / max(w H, eps) over the included
// channels (cm: 1/0 per channel when kMask); loss(r) = sum over the counted entries of
// x log r - x when kLoss.
template <int K, int R, bool kMask, bool kLoss, class T>
inline void kl_group_w(const T* __restrict x, index_t ldx, const T* __restrict H,
                       const T* __restrict cm, index_t Cp, index_t ld, const T* __restrict w,
                       double* __restrict num, double* __restrict loss) {
  using S = SimdT<T>;
  using V = typename S::V;
  constexpr int L = S::n;
  V acc[R][K];
  V ls[R];
  for (int r = 0; r < R; ++r) {
    ls[r] = V{};
    for (int k = 0; k < K; ++k) acc[r][k] = V{};
  }
  const V eps = S::splat(static_cast<T>(kEpsilon)), one = S::splat(T(1));
  for (index_t c = 0; c < Cp; c += L) {
    V h[K];
    for (int k = 0; k < K; ++k) h[k] = vload<V>(H + k * ld + c);
    V mk{};
    if constexpr (kMask) mk = vload<V>(cm + c);
    for (int r = 0; r < R; ++r) {
      V xv = vload<V>(x + r * ldx + c);
      if constexpr (kMask) xv *= mk;
      V wh = h[0] * w[r * K];
      for (int k = 1; k < K; ++k) wh += h[k] * w[r * K + k];
      wh = vmax(wh, eps);
      const V q = xv / wh;  // exactly 0 where x == 0 (or the channel is excluded)
      for (int k = 0; k < K; ++k) acc[r][k] += q * h[k];
      if constexpr (kLoss) {
        const auto counted = q > V{};
        ls[r] += xv * vlog<T>(counted ? q : one) - (counted ? xv : V{});
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < K; ++k) num[r * K + k] = hsum(acc[r][k]);
    if constexpr (kLoss) loss[r] = hsum(ls[r]);
  }
}

// KL, the H numerator of R pixels: acc(k, c) += sum_r wa(r, k) x_rc / max((wn H)_rc, eps)
// (all channels; wa = wn for pixels that drive H, 0 for the others).
template <int K, int R, class T>
inline void kl_group_h(const T* __restrict x, index_t ldx, const T* __restrict H, index_t Cp,
                       index_t ld, const T* __restrict wn, const T* __restrict wa,
                       T* __restrict acc) {
  using S = SimdT<T>;
  using V = typename S::V;
  constexpr int L = S::n;
  const V eps = S::splat(static_cast<T>(kEpsilon));
  for (index_t c = 0; c < Cp; c += L) {
    V h[K], a[K];
    for (int k = 0; k < K; ++k) {
      h[k] = vload<V>(H + k * ld + c);
      a[k] = vload<V>(acc + k * ld + c);
    }
    for (int r = 0; r < R; ++r) {
      const V xv = vload<V>(x + r * ldx + c);
      V wh = h[0] * wn[r * K];
      for (int k = 1; k < K; ++k) wh += h[k] * wn[r * K + k];
      wh = vmax(wh, eps);
      const V q = xv / wh;
      for (int k = 0; k < K; ++k) a[k] += q * wa[r * K + k];
    }
    for (int k = 0; k < K; ++k) vstore(acc + k * ld + c, a[k]);
  }
}

// Frobenius, the W half for R pixels: xh(r, k) = sum_c x_rc H_kc (H with the excluded
// channels zeroed) and sumsq(r) = sum of x^2 over the included channels.
template <int K, int R, bool kMask, class T>
inline void hals_group_w(const T* __restrict x, index_t ldx, const T* __restrict H,
                         const T* __restrict cm, index_t Cp, index_t ld, double* __restrict xh,
                         double* __restrict sumsq) {
  using S = SimdT<T>;
  using V = typename S::V;
  constexpr int L = S::n;
  V acc[R][K];
  V sq[R];
  for (int r = 0; r < R; ++r) {
    sq[r] = V{};
    for (int k = 0; k < K; ++k) acc[r][k] = V{};
  }
  for (index_t c = 0; c < Cp; c += L) {
    V h[K];
    for (int k = 0; k < K; ++k) h[k] = vload<V>(H + k * ld + c);
    V mk{};
    if constexpr (kMask) mk = vload<V>(cm + c);
    for (int r = 0; r < R; ++r) {
      const V xv = vload<V>(x + r * ldx + c);
      for (int k = 0; k < K; ++k) acc[r][k] += xv * h[k];
      if constexpr (kMask) {
        sq[r] += xv * xv * mk;
      } else {
        sq[r] += xv * xv;
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < K; ++k) xh[r * K + k] = hsum(acc[r][k]);
    sumsq[r] = hsum(sq[r]);
  }
}

// Frobenius, the X^T W half of R pixels: acc(k, c) += sum_r wa(r, k) x_rc.
template <int K, int R, class T>
inline void hals_group_h(const T* __restrict x, index_t ldx, index_t Cp, index_t ld,
                         const T* __restrict wa, T* __restrict acc) {
  using V = typename SimdT<T>::V;
  constexpr int L = SimdT<T>::n;
  for (index_t c = 0; c < Cp; c += L) {
    V a[K];
    for (int k = 0; k < K; ++k) a[k] = vload<V>(acc + k * ld + c);
    for (int r = 0; r < R; ++r) {
      const V xv = vload<V>(x + r * ldx + c);
      for (int k = 0; k < K; ++k) a[k] += xv * wa[r * K + k];
    }
    for (int k = 0; k < K; ++k) vstore(acc + k * ld + c, a[k]);
  }
}

// Channels rounded up to whole vectors.
template <class T>
index_t padded(index_t C) {
  constexpr index_t L = SimdT<T>::n;
  return (C + L - 1) / L * L;
}

// A zeroed, 64-byte aligned array (no std container: see the top of this file).
template <class T>
struct Buffer {
  T* p = nullptr;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }
  void release() {
    if (p != nullptr) ::operator delete(p, std::align_val_t{64});
    p = nullptr;
  }
  void zeroed(index_t n) {
    release();
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(T) + 63) / 64 * 64;
    p = static_cast<T*>(::operator new(bytes, std::align_val_t{64}));
    std::memset(p, 0, bytes);
  }
};

template <class TX, class T>
inline void convert(const TX* __restrict src, T* __restrict dst, index_t n) {
  for (index_t c = 0; c < n; ++c) dst[c] = static_cast<T>(src[c]);
}

inline void zero(float* p, index_t n) { std::memset(p, 0, static_cast<std::size_t>(n) * 4); }
inline void zero(double* p, index_t n) { std::memset(p, 0, static_cast<std::size_t>(n) * 8); }

// Per-thread rows of one pass, in one 64-byte aligned allocation with a common stride
// ld >= Cp: a private copy of H (K rows, zero padded), the packed pixels of a group
// (R rows) and the block's H accumulator (K rows). Consecutive rows start 64 bytes apart
// modulo 4 kB, so that the same channel of all these rows falls into different L1 sets
// (with 4 kB rows, e.g. 1024 float channels, they would all compete for one set).
template <class T>
struct GroupWorkspace {
  Buffer<T> buf;
  T* base = nullptr;
  index_t ld = 0, Cp = 0;
  int K = 0, R = 0;

  // Sets up the rows and copies H (excluded channels zeroed when zero_excluded).
  void init(ConstMatrixView<T> H, int rows, const std::uint8_t* channels, bool zero_excluded) {
    constexpr index_t s = sizeof(T);
    K = static_cast<int>(H.rows);
    R = rows;
    Cp = padded<T>(H.cols);
    ld = Cp + ((64 - (Cp * s) % 4096) % 4096 + 4096) % 4096 / s;
    buf.zeroed((2 * K + R) * ld);
    base = buf.p;
    for (index_t k = 0; k < K; ++k)
      for (index_t c = 0; c < H.cols; ++c)
        base[k * ld + c] = zero_excluded && !included(channels, c)
                               ? T(0)
                               : H.data[k * H.row_stride + c * H.col_stride];
  }
  T* h() { return base; }
  T* x() { return base + K * ld; }
  T* acc() { return base + (K + R) * ld; }

  // Rows [i0, i0 + nr) of X converted into the R pixel rows (zeros beyond nr and C).
  void pack(const RowSource<T>& X, index_t i0, index_t nr) {
    const index_t C = X.n_cols;
    for (int r = 0; r < R; ++r) {
      T* d = x() + r * ld;
      if (r < nr) {
        switch (X.counts) {  // integer counts converted at this level's vector width
          case kCountsU8:
            convert(static_cast<const std::uint8_t*>(X.data) + (i0 + r) * X.row_stride, d, C);
            break;
          case kCountsU16:
            convert(static_cast<const std::uint16_t*>(X.data) + (i0 + r) * X.row_stride, d, C);
            break;
          case kCountsU32:
            convert(static_cast<const std::uint32_t*>(X.data) + (i0 + r) * X.row_stride, d, C);
            break;
          default:
            X.load(X, i0 + r, d);
        }
        zero(d + C, Cp - C);
      } else {
        zero(d, Cp);
      }
    }
  }
  // The R rows of the group at i0 (nr of them real), and their stride: X's own rows when
  // it holds contiguous rows of T, needs no zero padding (C a whole number of vectors)
  // and the group is full; otherwise packed into x().
  const T* rows(const RowSource<T>& X, index_t i0, index_t nr, index_t& ldx) {
    if (X.direct != nullptr && nr == R && X.n_cols == Cp) {
      ldx = X.row_stride;
      return X.direct + i0 * X.row_stride;
    }
    pack(X, i0, nr);
    ldx = ld;
    return x();
  }
  void clear_acc() { zero(acc(), K * ld); }
  // acc += the block accumulator (K x C, float64).
  void flush_acc(double* a, index_t C) {
    const T* b = acc();
    for (index_t k = 0; k < K; ++k)
      for (index_t c = 0; c < C; ++c) a[k * C + c] += static_cast<double>(b[k * ld + c]);
  }
};

// One workspace per thread, set up by the thread's first block.
template <class T>
struct Workspaces {
  GroupWorkspace<T>* p;
  explicit Workspaces(int n) : p(new GroupWorkspace<T>[n]) {}
  Workspaces(const Workspaces&) = delete;
  Workspaces& operator=(const Workspaces&) = delete;
  ~Workspaces() { delete[] p; }
};

// A channel mask as 1/0 factors, padded with zeros to Cp (null without a mask).
template <class T>
void mask_factors(Buffer<T>& m, const std::uint8_t* channels, index_t C, index_t Cp) {
  if (channels == nullptr) return;
  m.zeroed(Cp);
  for (index_t c = 0; c < C; ++c) m.p[c] = channels[c] ? T(1) : T(0);
}

// body(b, tid) for every block, on the baseline parallel loop.
template <class Body>
void blocks(index_t n_blocks, int n_threads, Body& body) {
  run_blocks(
      n_blocks, n_threads,
      [](void* ctx, index_t b, int tid) { (*static_cast<Body*>(ctx))(b, tid); }, &body);
}

template <class T>
inline T at(const ConstMatrixView<T>& m, index_t i, index_t j) {
  return m.data[i * m.row_stride + j * m.col_stride];
}

template <int K, bool kMask, bool kLoss, class T>
void kl_blocks_fixed(const KlBlockArgs<T>& s) {
  constexpr int R = group_rows<K>();
  const index_t N = s.X.n_rows, C = s.X.n_cols, Cp = padded<T>(C);
  Buffer<T> cm;
  mask_factors(cm, s.masks.channels, C, Cp);
  Workspaces<T> spaces(s.n_threads);
  constexpr index_t B = 64;  // rows per block: H accumulated in T over a block, then float64
  auto body = [&](index_t b, int tid) {
    GroupWorkspace<T>& ws = spaces.p[tid];
    if (ws.base == nullptr) ws.init(s.H, R, nullptr, false);
    const index_t ld = ws.ld;
    if (s.update_H) ws.clear_acc();
    T w[R * K], wn[R * K], wa[R * K];
    double num[R * K], lrow[R];
    double* wo = s.wsum_old + tid * s.wsum_stride;
    double* wsn = s.wsum_new + tid * s.wsum_stride;
    double loss = 0.0;
    const index_t i0 = b * B, i1 = i0 + B < N ? i0 + B : N;
    for (index_t g = i0; g < i1; g += R) {
      const index_t nr = i1 - g < R ? i1 - g : R;
      index_t ldx = 0;
      const T* x = ws.rows(s.X, g, nr, ldx);
      for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) w[r * K + k] = r < nr ? at(s.W, g + r, k) : T(0);
      kl_group_w<K, R, kMask, kLoss>(x, ldx, ws.h(), cm.p, Cp, ld, w, num, lrow);
      for (int r = 0; r < R; ++r) {
        const bool row = r < nr;
        const bool pix = row && included(s.masks.pixels, g + r);
        if (kLoss && pix) {
          loss += lrow[r];
          for (int k = 0; k < K; ++k) wo[k] += w[r * K + k];
        }
        for (int k = 0; k < K; ++k) {
          const T delta = static_cast<T>(num[r * K + k]) / s.den[k];
          const T v = w[r * K + k] * delta;
          wn[r * K + k] = v;
          if (row) s.W_out[(g + r) * K + k] = v;
          wa[r * K + k] = pix ? v : T(0);
          if (pix && s.update_H) wsn[k] += v;
        }
      }
      if (s.update_H) kl_group_h<K, R>(x, ldx, ws.h(), Cp, ld, wn, wa, ws.acc());
    }
    s.loss_part[tid] += loss;
    if (s.update_H) ws.flush_acc(s.acc + tid * s.acc_stride, C);
  };
  blocks((N + B - 1) / B, s.n_threads, body);
}

template <int K, class T>
void kl_blocks_k(const KlBlockArgs<T>& s) {
  const bool mask = s.masks.channels != nullptr;
  if (mask && s.with_loss) return kl_blocks_fixed<K, true, true>(s);
  if (mask) return kl_blocks_fixed<K, true, false>(s);
  if (s.with_loss) return kl_blocks_fixed<K, false, true>(s);
  return kl_blocks_fixed<K, false, false>(s);
}

// The per-pixel Poisson deviance (DevianceBlockArgs): the loss of kl_group_w per row.
template <int K, bool kMask, class T>
void deviance_blocks_fixed(const DevianceBlockArgs<T>& s) {
  constexpr int R = group_rows<K>();
  const index_t N = s.X.n_rows, C = s.X.n_cols, Cp = padded<T>(C);
  Buffer<T> cm;
  mask_factors(cm, s.channels, C, Cp);
  Workspaces<T> spaces(s.n_threads);
  constexpr index_t B = 64;
  auto body = [&](index_t b, int tid) {
    GroupWorkspace<T>& ws = spaces.p[tid];
    if (ws.base == nullptr) ws.init(s.H, R, nullptr, false);
    T w[R * K];
    double num[R * K], lrow[R];
    const index_t i0 = b * B, i1 = i0 + B < N ? i0 + B : N;
    for (index_t g = i0; g < i1; g += R) {
      const index_t nr = i1 - g < R ? i1 - g : R;
      ws.pack(s.X, g, nr);
      for (int r = 0; r < R; ++r)
        for (int k = 0; k < K; ++k) w[r * K + k] = r < nr ? at(s.W, g + r, k) : T(0);
      kl_group_w<K, R, kMask, true>(ws.x(), ws.ld, ws.h(), cm.p, Cp, ws.ld, w, num, lrow);
      for (int r = 0; r < nr; ++r) {
        double dev = 0.0;
        for (int k = 0; k < K; ++k) dev += static_cast<double>(w[r * K + k]) * s.hsum[k];
        s.out[g + r] = 2.0 * (dev + lrow[r]);
      }
    }
  };
  blocks((N + B - 1) / B, s.n_threads, body);
}

template <class T>
bool deviance_small(const DevianceBlockArgs<T>& s) {
  const bool mask = s.channels != nullptr;
  switch (s.W.cols) {
#define MATCHAR_DEVIANCE_CASE(KK) \
  case KK:                        \
    return (mask ? deviance_blocks_fixed<KK, true>(s) : deviance_blocks_fixed<KK, false>(s)), true;
    MATCHAR_DEVIANCE_CASE(1)
    MATCHAR_DEVIANCE_CASE(2)
    MATCHAR_DEVIANCE_CASE(3)
    MATCHAR_DEVIANCE_CASE(4)
    MATCHAR_DEVIANCE_CASE(5)
    MATCHAR_DEVIANCE_CASE(6)
    MATCHAR_DEVIANCE_CASE(7)
    MATCHAR_DEVIANCE_CASE(8)
#undef MATCHAR_DEVIANCE_CASE
    default:
      return false;
  }
}

// The weighted Gram pass (GramBlockArgs), for LB of the L columns of V at a time:
// y(r, l) = sum_c x_rc Vt(l, c) for R packed (weighted) rows ...
template <int R, int LB, class T>
inline void gram_group_y(const T* __restrict x, const T* __restrict Vt, index_t Cp, index_t ld,
                         double* __restrict y) {
  using S = SimdT<T>;
  using V = typename S::V;
  constexpr int L = S::n;
  V acc[R][LB];
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < LB; ++l) acc[r][l] = V{};
  for (index_t c = 0; c < Cp; c += L) {
    V v[LB];
    for (int l = 0; l < LB; ++l) v[l] = vload<V>(Vt + l * ld + c);
    for (int r = 0; r < R; ++r) {
      const V xv = vload<V>(x + r * ld + c);
      for (int l = 0; l < LB; ++l) acc[r][l] += xv * v[l];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < LB; ++l) y[r * LB + l] = hsum(acc[r][l]);
}

// ... and Z(l, c) += sum_r y(r, l) x_rc into LB accumulator rows.
template <int R, int LB, class T>
inline void gram_group_z(const T* __restrict x, index_t Cp, index_t ld, const T* __restrict y,
                         T* __restrict Z) {
  using S = SimdT<T>;
  using V = typename S::V;
  constexpr int L = S::n;
  V yv[R][LB];
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < LB; ++l) yv[r][l] = S::splat(y[r * LB + l]);
  for (index_t c = 0; c < Cp; c += L) {
    V xv[R];
    for (int r = 0; r < R; ++r) xv[r] = vload<V>(x + r * ld + c);
    for (int l = 0; l < LB; ++l) {
      V z = vload<V>(Z + l * ld + c);
      for (int r = 0; r < R; ++r) z += xv[r] * yv[r][l];
      vstore(Z + l * ld + c, z);
    }
  }
}

// One chunk of LB columns of V starting at l0 for the R rows of a group.
template <int R, int LB, class T>
inline void gram_chunk(GroupWorkspace<T>& ws, index_t l0, index_t nr, const double* offset,
                       double* s) {
  double y[R * LB];
  T yt[R * LB];
  gram_group_y<R, LB>(ws.x(), ws.h() + l0 * ws.ld, ws.Cp, ws.ld, y);
  for (int r = 0; r < R; ++r)
    for (int l = 0; l < LB; ++l) {
      // rows past the end of X are zero rows: no Y row (and no offset) of theirs
      const T v = r < nr ? static_cast<T>(y[r * LB + l] - (offset ? offset[l0 + l] : 0.0)) : T(0);
      yt[r * LB + l] = v;
      s[l0 + l] += static_cast<double>(v);
    }
  gram_group_z<R, LB>(ws.x(), ws.Cp, ws.ld, yt, ws.acc() + l0 * ws.ld);
}

template <class T>
bool gram_small(const GramBlockArgs<T>& s) {
  constexpr int R = group_rows<4>();
  const index_t N = s.X.n_rows, C = s.X.n_cols, Lc = s.V.cols, Cp = padded<T>(C);
  if (Lc > kMaxGramL) return false;
  Buffer<T> cw;  // column weights, zero padded
  cw.zeroed(Cp);
  for (index_t c = 0; c < C; ++c) cw.p[c] = static_cast<T>(s.c ? s.c[c] : 1.0);
  // V^T (L x C) as the workspace's "H" rows
  const ConstMatrixView<T> Vt{s.V.data, Lc, C, s.V.col_stride, s.V.row_stride};
  Workspaces<T> spaces(s.n_threads);
  constexpr index_t B = 64;  // rows per block: Z accumulated in T over a block, then float64
  auto body = [&](index_t b, int tid) {
    using V = typename SimdT<T>::V;
    constexpr int Ln = SimdT<T>::n;
    GroupWorkspace<T>& ws = spaces.p[tid];
    if (ws.base == nullptr) ws.init(Vt, R, nullptr, false);
    ws.clear_acc();
    double* a = s.acc + tid * s.acc_stride;
    double* sums = a + Lc * C;
    const index_t i0 = b * B, i1 = i0 + B < N ? i0 + B : N;
    for (index_t g = i0; g < i1; g += R) {
      const index_t nr = i1 - g < R ? i1 - g : R;
      ws.pack(s.X, g, nr);
      for (index_t r = 0; r < nr; ++r) {  // Xw = diag(r) X diag(c)
        T* xr = ws.x() + r * ws.ld;
        const V rw = SimdT<T>::splat(static_cast<T>(s.r ? s.r[g + r] : 1.0));
        for (index_t c = 0; c < Cp; c += Ln)
          vstore(xr + c, vload<V>(xr + c) * vload<V>(cw.p + c) * rw);
      }
      index_t l0 = 0;
      for (; l0 + 4 <= Lc; l0 += 4) gram_chunk<R, 4>(ws, l0, nr, s.offset, sums);
      switch (Lc - l0) {
        case 3:
          gram_chunk<R, 3>(ws, l0, nr, s.offset, sums);
          break;
        case 2:
          gram_chunk<R, 2>(ws, l0, nr, s.offset, sums);
          break;
        case 1:
          gram_chunk<R, 1>(ws, l0, nr, s.offset, sums);
          break;
        default:
          break;
      }
    }
    ws.flush_acc(a, C);
  };
  blocks((N + B - 1) / B, s.n_threads, body);
  return true;
}

// The dense HALS pass for small K (see hals_update): per group, X H^T and the sums of
// squares in one sweep, the W rows by coordinate descent, then X^T W_new accumulated.
template <int K, bool kMask, class T>
void hals_blocks_fixed(const HalsBlockArgs<T>& s) {
  constexpr int R = group_rows<K>();
  const index_t N = s.X.n_rows, C = s.X.n_cols, Cp = padded<T>(C);
  Buffer<T> cm;
  mask_factors(cm, s.masks.channels, C, Cp);
  Workspaces<T> spaces(s.n_threads);
  constexpr index_t B = 64;
  auto body = [&](index_t b, int tid) {
    GroupWorkspace<T>& ws = spaces.p[tid];
    if (ws.base == nullptr) ws.init(s.H, R, s.masks.channels, true);
    ws.clear_acc();
    double w[K], xh[R * K], sq[R];
    T wa[R * K];
    double* g = s.wtw + tid * s.wtw_stride;
    double sumsq = 0.0;
    const index_t i0 = b * B, i1 = i0 + B < N ? i0 + B : N;
    for (index_t g0 = i0; g0 < i1; g0 += R) {
      const index_t nr = i1 - g0 < R ? i1 - g0 : R;
      index_t ldx = 0;
      const T* x = ws.rows(s.X, g0, nr, ldx);
      hals_group_w<K, R, kMask>(x, ldx, ws.h(), cm.p, Cp, ws.ld, xh, sq);
      for (int r = 0; r < R; ++r) {
        for (int k = 0; k < K; ++k) wa[r * K + k] = T(0);
        if (r >= nr) continue;
        const index_t i = g0 + r;
        for (int k = 0; k < K; ++k) w[k] = at(s.W, i, k);
        cd_sweeps(w, s.HHt, xh + r * K, K, s.sweeps);
        for (int k = 0; k < K; ++k) {
          s.W_out[i * K + k] = static_cast<T>(w[k]);
          w[k] = static_cast<double>(s.W_out[i * K + k]);
        }
        if (!included(s.masks.pixels, i)) continue;  // excluded pixels do not drive H
        for (int k = 0; k < K; ++k)
          for (int l = 0; l < K; ++l) g[k * K + l] += w[k] * w[l];
        sumsq += sq[r];
        for (int k = 0; k < K; ++k) wa[r * K + k] = static_cast<T>(w[k]);
      }
      hals_group_h<K, R>(x, ldx, Cp, ws.ld, wa, ws.acc());
    }
    s.sumsq_part[tid] += sumsq;
    ws.flush_acc(s.acc + tid * s.acc_stride, C);
  };
  blocks((N + B - 1) / B, s.n_threads, body);
}

template <int K, class T>
void hals_blocks_k(const HalsBlockArgs<T>& s) {
  if (s.masks.channels != nullptr)
    hals_blocks_fixed<K, true>(s);
  else
    hals_blocks_fixed<K, false>(s);
}

// K = 1..8 (kMaxSmallK, checked in nmf_blocked.cpp) at compile time; false otherwise.
template <class T>
bool kl_small(const KlBlockArgs<T>& s) {
  switch (s.W.cols) {
    case 1:
      return kl_blocks_k<1>(s), true;
    case 2:
      return kl_blocks_k<2>(s), true;
    case 3:
      return kl_blocks_k<3>(s), true;
    case 4:
      return kl_blocks_k<4>(s), true;
    case 5:
      return kl_blocks_k<5>(s), true;
    case 6:
      return kl_blocks_k<6>(s), true;
    case 7:
      return kl_blocks_k<7>(s), true;
    case 8:
      return kl_blocks_k<8>(s), true;
    default:
      return false;
  }
}
template <class T>
bool hals_small(const HalsBlockArgs<T>& s) {
  switch (s.W.cols) {
    case 1:
      return hals_blocks_k<1>(s), true;
    case 2:
      return hals_blocks_k<2>(s), true;
    case 3:
      return hals_blocks_k<3>(s), true;
    case 4:
      return hals_blocks_k<4>(s), true;
    case 5:
      return hals_blocks_k<5>(s), true;
    case 6:
      return hals_blocks_k<6>(s), true;
    case 7:
      return hals_blocks_k<7>(s), true;
    case 8:
      return hals_blocks_k<8>(s), true;
    default:
      return false;
  }
}

const BlockedTable kTable{
    {kl_small<float>, hals_small<float>, deviance_small<float>, gram_small<float>},
    {kl_small<double>, hals_small<double>, deviance_small<double>, gram_small<double>},
    {scan_expectation, scan_add, scan_windows}};

}  // namespace

const BlockedTable& blocked_table() { return kTable; }

}  // namespace matchar::spectral::detail::MATCHAR_ISA
