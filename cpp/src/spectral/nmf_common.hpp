// The shared layer of the NMF passes (nmf_kl.cpp, nmf_hals.cpp, nmf_deviance.cpp): fast
// logarithms, per-thread accumulators, the H update, coordinate descent, the HALS H half,
// and the row kernels of the dense passes. Internal linkage: each pass file gets its own
// copy of what it uses.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "blocks.hpp"
#include "nmf_blocked.hpp"
#include "row_source.hpp"

namespace matchar::spectral {
namespace {

using detail::DevianceBlockArgs;
using detail::dispatch_small_k;
using detail::HalsBlockArgs;
using detail::included;
using detail::KlBlockArgs;
using detail::load_row;
using detail::row_source;
using detail::RowMat;
using detail::RowSource;

constexpr double kTiny = std::numeric_limits<double>::epsilon();  // H below this -> 0

// Natural logarithm of a positive normal double, branch-free so that the loss loops
// vectorise (libm's log does not): exponent from the bits, mantissa m in
// [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)) by its series to s^15.
// Relative error < 1e-13 over the normal range; the divergence is a sum of these.
inline double fast_log(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  std::int64_t e = static_cast<std::int64_t>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  double m;
  std::memcpy(&m, &bits, sizeof m);
  const double high = static_cast<double>(m > 1.4142135623730951);
  m *= 1.0 - 0.5 * high;
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  const double p =
      s2 * (1.0 / 3 +
            s2 * (1.0 / 5 +
                  s2 * (1.0 / 7 +
                        s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13 + s2 * (1.0 / 15)))))));
  return (static_cast<double>(e) + high) * 0.6931471805599453 + 2.0 * s * (1.0 + p);
}

// The same in single precision (relative error < 1e-6), for float factors: twice the
// lanes, and 32-bit integer operations that every vector ISA has.
inline float fast_logf(float v) {
  std::int32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  std::int32_t e = ((bits >> 23) & 0xff) - 127;
  bits = (bits & 0x007FFFFF) | 0x3F800000;
  float m;
  std::memcpy(&m, &bits, sizeof m);
  const float high = static_cast<float>(m > 1.41421356f);  // arithmetic, not a branch
  m *= 1.0f - 0.5f * high;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float p = s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  return (static_cast<float>(e) + high) * 0.6931471805599453f + 2.0f * s * (1.0f + p);
}

// sum_c x_c log(r_c) over entries with r_c > 0 (r = x / wh, 0 where not counted).
inline double sum_x_log_ratio(const double* x, const double* r, index_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t c = 0; c < n; ++c) {
    const double rc = r[c] + static_cast<double>(r[c] <= 1e-300);
    s += x[c] * fast_log(rc);
  }
  return s;
}
inline double sum_x_log_ratio(const float* x, const float* r, index_t n) {
  // Partial sums in float over short runs, then float64: exact enough, fully vectorised.
  double total = 0.0;
  constexpr index_t kRun = 256;
  for (index_t c0 = 0; c0 < n; c0 += kRun) {
    const index_t c1 = std::min(n, c0 + kRun);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (index_t c = c0; c < c1; ++c) {
      // r >= 0; entries with r == 0 are not counted: log(1) = 0 there.
      const float rc = r[c] + static_cast<float>(r[c] <= 1e-37f);
      s += x[c] * fast_logf(rc);
    }
    total += static_cast<double>(s);
  }
  return total;
}

// Per-thread float64 accumulators, reduced in thread order (deterministic).
struct Accumulators {
  int n_threads;
  index_t size;
  std::vector<double> data;
  Accumulators(int threads, index_t n, const char* what) : n_threads(threads), size(n) {
    check_allocation(static_cast<std::size_t>(threads) * static_cast<std::size_t>(n),
                     sizeof(double), what);
    data.assign(static_cast<std::size_t>(threads) * static_cast<std::size_t>(n), 0.0);
  }
  double* of(int tid) { return data.data() + static_cast<std::size_t>(tid) * size; }
  double sum(index_t j) const {
    double s = 0.0;
    for (int t = 0; t < n_threads; ++t) s += data[static_cast<std::size_t>(t) * size + j];
    return s;
  }
};

// Sum over included channels of each row of H (K).
template <class T>
std::vector<double> masked_row_sums(ConstMatrixView<T> H, const std::uint8_t* channels) {
  std::vector<double> s(static_cast<std::size_t>(H.rows), 0.0);
  for (index_t k = 0; k < H.rows; ++k)
    for (index_t c = 0; c < H.cols; ++c)
      if (included(channels, c)) s[k] += H(k, c);
  return s;
}

// H_out = H * numerator / denominator (per component), tiny values -> 0; numerator(k, c)
// is the thread-ordered sum of the accumulators at k * C + c.
template <class T>
void finish_kl_h(ConstMatrixView<T> H, const Accumulators& acc, const std::vector<double>& wsum,
                 T* H_out) {
  const index_t K = H.rows, C = H.cols;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (K * C > 65536)
  for (index_t c = 0; c < C; ++c) {
    for (index_t k = 0; k < K; ++k) {
      const double den = wsum[k] == 0.0 ? kEpsilon : wsum[k];
      // The quotient is rounded to T before the product, as in the NumPy update.
      const T delta = static_cast<T>(acc.sum(k * C + c) / den);
      T h = H(k, c) * delta;
      if (h < static_cast<T>(kTiny)) h = T(0);
      H_out[k * C + c] = h;
    }
  }
}

// Cyclic coordinate descent on the columns of one row w (K) of a factor:
// minimises 0.5 w^T G w - b^T w over w >= 0, one coordinate at a time, in order.
inline bool cd_sweep(double* w, const double* G, const double* b, index_t K) {
  bool changed = false;
  for (index_t k = 0; k < K; ++k) {
    double grad = -b[k];
    for (index_t r = 0; r < K; ++r) grad += G[k * K + r] * w[r];
    const double hess = G[k * K + k];
    if (hess != 0.0) {
      const double v = std::max(w[k] - grad / hess, 0.0);
      changed = changed || v != w[k];
      w[k] = v;
    }
  }
  return changed;
}

using detail::cd_sweeps;

// The H half of a HALS sweep and the loss of the new state:
// xtw(k, c) = sum_i W_ik X_ic over included pixels, WtW (K x K), sumsq = sum X^2 over
// included entries.
template <class T, class XtW>
double finish_hals(ConstMatrixView<T> H, Masks masks, bool update_H, XtW xtw,
                   const std::vector<double>& WtW, double sumsq, T* H_out, int sweeps) {
  const index_t K = H.rows, C = H.cols;
  std::vector<double> cross(static_cast<std::size_t>(C), 0.0);
  std::vector<double> hht_parts;
  const int nt = num_threads();
  hht_parts.assign(static_cast<std::size_t>(nt) * K * K, 0.0);
  struct Row {
    int tid;
    std::vector<double> h, b;
  };
  matchar::detail::parallel_for(
      C, K * C > 65536 ? nt : 1, matchar::detail::Schedule::Static, 1,
      [&] { return Row{omp_get_thread_num(), std::vector<double>(K), std::vector<double>(K)}; },
      [&](index_t c, Row& row) {
        double* h = row.h.data();
        double* b = row.b.data();
        double* hht = hht_parts.data() + static_cast<std::size_t>(row.tid) * K * K;
        for (index_t k = 0; k < K; ++k) {
          h[k] = H(k, c);
          b[k] = xtw(k, c);
        }
        if (update_H) {
          cd_sweeps(h, WtW.data(), b, K, sweeps);
          for (index_t k = 0; k < K; ++k) {
            H_out[k * C + c] = static_cast<T>(h[k]);
            h[k] = static_cast<double>(H_out[k * C + c]);
          }
        }
        if (included(masks.channels, c)) {
          double x = 0.0;
          for (index_t k = 0; k < K; ++k) x += h[k] * b[k];
          cross[c] = x;
          for (index_t k = 0; k < K; ++k)
            for (index_t l = 0; l < K; ++l) hht[k * K + l] += h[k] * h[l];
        }
      });
  double cross_sum = 0.0;
  for (index_t c = 0; c < C; ++c) cross_sum += cross[c];
  double quad = 0.0;
  for (index_t k = 0; k < K; ++k)
    for (index_t l = 0; l < K; ++l) {
      double hkl = 0.0;
      for (int t = 0; t < nt; ++t)
        hkl += hht_parts[static_cast<std::size_t>(t) * K * K + k * K + l];
      quad += WtW[k * K + l] * hkl;
    }
  return std::max(0.5 * (sumsq - 2.0 * cross_sum + quad), 0.0);
}

}  // namespace

// ---------------------------------------------------------------------------
// Row kernels of the dense passes: everything about one pixel stays in L1 (its spectrum,
// its W H and ratios, C elements each), H (K x C) in L1/L2. Vectorised over channels.
// ---------------------------------------------------------------------------
namespace {

// wh = w^T H for one pixel (H row-major K x C).
template <class T>
void row_times_h(const T* __restrict w, const T* __restrict H, index_t K, index_t C,
                 T* __restrict wh) {
#pragma omp simd
  for (index_t c = 0; c < C; ++c) wh[c] = w[0] * H[c];
  for (index_t k = 1; k < K; ++k) {
    const T wk = w[k];
    const T* __restrict h = H + k * C;
#pragma omp simd
    for (index_t c = 0; c < C; ++c) wh[c] += wk * h[c];
  }
}

// The same with K known at compile time: one pass over the channels, the K products
// of each channel summed in registers (no read-modify-write of wh per component).
template <int KK, class T>
void row_times_h_fixed(const T* __restrict w, const T* __restrict H, index_t, index_t C,
                       T* __restrict wh) {
  T wk[KK];
  for (int k = 0; k < KK; ++k) wk[k] = w[k];
#pragma omp simd
  for (index_t c = 0; c < C; ++c) {
    T s = wk[0] * H[c];
    for (int k = 1; k < KK; ++k) s += wk[k] * H[k * C + c];
    wh[c] = s;
  }
}

// out[k] = sum_c r[c] H[k, c] for every component k.
template <class T>
void row_dots(const T* __restrict r, const T* __restrict H, index_t K, index_t C,
              double* __restrict out) {
  for (index_t k = 0; k < K; ++k) {
    const T* __restrict h = H + k * C;
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (index_t c = 0; c < C; ++c) s += r[c] * h[c];
    out[k] = static_cast<double>(s);
  }
}

// The same in one pass: K x 16 partial sums (vector registers), reduced at the end.
template <int KK, class T>
void row_dots_fixed(const T* __restrict r, const T* __restrict H, index_t, index_t C,
                    double* __restrict out) {
  constexpr int kLanes = 16;
  T acc[KK][kLanes] = {};
  index_t c0 = 0;
  for (; c0 + kLanes <= C; c0 += kLanes) {
    for (int k = 0; k < KK; ++k) {
      const T* __restrict h = H + k * C + c0;
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) acc[k][j] += r[c0 + j] * h[j];
    }
  }
  for (int k = 0; k < KK; ++k) {
    T s = T(0);
    for (int j = 0; j < kLanes; ++j) s += acc[k][j];
    for (index_t c = c0; c < C; ++c) s += r[c] * H[k * C + c];
    out[k] = static_cast<double>(s);
  }
}

template <class T>
struct RowOps {
  void (*times_h)(const T*, const T*, index_t, index_t, T*);
  void (*dots)(const T*, const T*, index_t, index_t, double*);
};

template <class T>
RowOps<T> row_ops(index_t K) {
  RowOps<T> ops{row_times_h<T>, row_dots<T>};
  dispatch_small_k(K, [&](auto k) {
    constexpr int KK = decltype(k)::value;
    ops = {row_times_h_fixed<KK, T>, row_dots_fixed<KK, T>};
  });
  return ops;
}

template <class T>
inline double dot(const T* __restrict a, const T* __restrict b, index_t n) {
  T s = T(0);
#pragma omp simd reduction(+ : s)
  for (index_t c = 0; c < n; ++c) s += a[c] * b[c];
  return static_cast<double>(s);
}

// r = x / max(wh, eps) where x > 0 and the channel is included, else 0 (in place in wh).
template <class T>
inline void ratio(const T* __restrict x, T* __restrict wh, const std::uint8_t* channels,
                  index_t C) {
  const T eps = static_cast<T>(kEpsilon);
  if (channels == nullptr) {
#pragma omp simd
    for (index_t c = 0; c < C; ++c) wh[c] = x[c] > T(0) ? x[c] / std::max(wh[c], eps) : T(0);
  } else {
#pragma omp simd
    for (index_t c = 0; c < C; ++c)
      wh[c] = (x[c] > T(0)) & (channels[c] != 0) ? x[c] / std::max(wh[c], eps) : T(0);
  }
}

// sum_c [x log(r) - x] over the entries where r > 0 (the counted ones).
template <class T>
inline double kl_row_terms(const T* __restrict x, const T* __restrict r, index_t C) {
  double s = sum_x_log_ratio(x, r, C);
  double counted = 0.0;
#pragma omp simd reduction(+ : counted)
  for (index_t c = 0; c < C; ++c) counted += r[c] > T(0) ? static_cast<double>(x[c]) : 0.0;
  return s - counted;
}

}  // namespace

}  // namespace matchar::spectral

// Explicit instantiations of a pass file: X in {uint8, uint16, uint32, float, double} x
// factors in {float, double}; CSR data float/double with int32/int64 indices.
#define MATCHAR_NMF_ALL_X(DENSE, CSR, T) \
  DENSE(std::uint8_t, T)                 \
  DENSE(std::uint16_t, T)                \
  DENSE(std::uint32_t, T)                \
  DENSE(float, T)                        \
  DENSE(double, T)                       \
  CSR(float, std::int32_t, T)            \
  CSR(float, std::int64_t, T)            \
  CSR(double, std::int32_t, T)           \
  CSR(double, std::int64_t, T)
#define MATCHAR_NMF_INSTANTIATE(DENSE, CSR) \
  MATCHAR_NMF_ALL_X(DENSE, CSR, float)      \
  MATCHAR_NMF_ALL_X(DENSE, CSR, double)
