#include "matchar/spectral/physics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "blocks.hpp"

namespace matchar::spectral {
namespace {

using detail::included;

// The non-negative minimiser of q/2 a^2 + beta a - p log a.
inline double surrogate_root(double p, double beta, double q) {
  if (q == 0.0) {
    if (!(p > 0.0)) return 0.0;
    const double a = p / beta;
    return (std::isfinite(a) && a > 0.0) ? a : 0.0;
  }
  const double disc = std::sqrt(beta * beta + 4.0 * q * p);
  if (beta >= 0.0) {
    const double d = beta + disc;
    return d > 0.0 ? 2.0 * p / d : 0.0;
  }
  return (disc - beta) / (2.0 * q);
}

void check_maps(const SurrogateMaps& maps) {
  if (maps.beta == nullptr) throw InvalidArgument("beta must not be null");
  if (!std::isfinite(maps.q) || maps.q < 0.0)
    throw InvalidArgument("q must be a finite number >= 0");
  if (maps.n_bisect < 1) throw InvalidArgument("n_bisect must be >= 1");
}

// Per-thread float64 accumulators, reduced in thread order (deterministic).
struct Acc {
  index_t size;
  std::vector<double> data;
  Acc(int threads, index_t n, const char* what) : size(n) {
    check_allocation(static_cast<std::size_t>(threads) * static_cast<std::size_t>(n),
                     sizeof(double), what);
    data.assign(static_cast<std::size_t>(threads) * static_cast<std::size_t>(n), 0.0);
  }
  double* of(int tid) { return data.data() + static_cast<std::size_t>(tid) * size; }
  double sum(index_t j, int threads) const {
    double s = 0.0;
    for (int t = 0; t < threads; ++t) s += data[static_cast<std::size_t>(t) * size + j];
    return s;
  }
};

template <class T>
std::vector<double> factor_to_double(ConstMatrixView<T> M) {
  std::vector<double> out(static_cast<std::size_t>(M.rows * M.cols));
  for (index_t i = 0; i < M.rows; ++i)
    for (index_t j = 0; j < M.cols; ++j) out[i * M.cols + j] = static_cast<double>(M(i, j));
  return out;
}

void check_beta_finite(const double* beta, index_t n) {
  for (index_t j = 0; j < n; ++j)
    if (!std::isfinite(beta[j])) throw InvalidArgument("beta contains NaN or infinite values");
}

}  // namespace

void surrogate_row(const double* p, const double* beta, double q, bool simplex, int n_bisect,
                   const double* prev, index_t K, double* a) {
  if (!simplex) {
    for (index_t k = 0; k < K; ++k) a[k] = surrogate_root(p[k], beta[k], q);
    return;
  }
  // sum_k a_k(nu) is non-increasing in nu; bracket: every a_k <= 1 at lo (so the largest
  // term alone... the sum is >= 1 there unless all p vanish), every a_k <= 1/K at hi.
  double lo = -INFINITY, hi = -INFINITY;
  const double kk = static_cast<double>(K);
  for (index_t k = 0; k < K; ++k) {
    lo = std::max(lo, p[k] - q - beta[k]);
    hi = std::max(hi, kk * p[k] - q / kk - beta[k]);
  }
  hi = std::max(hi, lo);
  for (int it = 0; it < n_bisect; ++it) {
    const double mid = 0.5 * (lo + hi);
    double tot = 0.0;
    for (index_t k = 0; k < K; ++k) tot += surrogate_root(p[k], beta[k] + mid, q);
    if (tot > 1.0)
      lo = mid;
    else
      hi = mid;
  }
  const double nu = 0.5 * (lo + hi);
  double tot = 0.0;
  for (index_t k = 0; k < K; ++k) {
    a[k] = surrogate_root(p[k], beta[k] + nu, q);
    tot += a[k];
  }
  if (!(tot > 0.0)) {
    for (index_t k = 0; k < K; ++k) a[k] = prev[k];
    return;
  }
  for (index_t k = 0; k < K; ++k) a[k] /= tot;
}

template <class TX, class T>
double kl_surrogate_pass(ConstMatrixView<TX> X, ConstMatrixView<T> A, ConstMatrixView<T> H,
                         SurrogateMaps maps, Masks masks, bool with_loss, T* A_out,
                         double* numerator, double* colsum) {
  detail::check_factors(X.rows, X.cols, A.rows, A.cols, H.rows, H.cols);
  check_maps(maps);
  if (A_out == nullptr || numerator == nullptr || colsum == nullptr)
    throw InvalidArgument("output buffers must not be null");
  const index_t N = X.rows, C = X.cols, K = A.cols;
  check_beta_finite(maps.beta, N * K);
  const std::vector<double> Hd = factor_to_double(H);
  std::vector<double> hsum(static_cast<std::size_t>(K), 0.0);
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c)
      if (included(masks.channels, c)) hsum[k] += Hd[k * C + c];

  constexpr index_t B = 64;
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Acc acc(nt, K * C, "PhysicsNMF accumulators");
  Acc cs(nt, K, "PhysicsNMF accumulators");
  Acc old(nt, K, "PhysicsNMF accumulators");
  std::vector<double> loss_part(static_cast<std::size_t>(nt), 0.0);
  const double eps = kEpsilon;

  detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
    std::vector<double> x(C), r(C), prev(K), p(K), a(K);
    double* ac = acc.of(tid);
    double* cso = cs.of(tid);
    double* oldo = old.of(tid);
    double loss = 0.0;
    const index_t i0 = b * B, i1 = std::min(N, i0 + B);
    for (index_t i = i0; i < i1; ++i) {
      const bool pix = included(masks.pixels, i);
      const TX* src = X.data + i * X.row_stride;
      for (index_t c = 0; c < C; ++c) x[c] = static_cast<double>(src[c * X.col_stride]);
      for (index_t k = 0; k < K; ++k) prev[k] = static_cast<double>(A(i, k));
      // r = x / (prev H) on the included channels with counts.
      for (index_t c = 0; c < C; ++c) r[c] = 0.0;
      for (index_t k = 0; k < K; ++k) {
        const double w = prev[k];
        const double* h = Hd.data() + k * C;
#pragma omp simd
        for (index_t c = 0; c < C; ++c) r[c] += w * h[c];
      }
      for (index_t c = 0; c < C; ++c) {
        const bool on = x[c] > 0.0 && included(masks.channels, c);
        const double wh = std::max(r[c], eps);
        if (on && pix && with_loss) loss += x[c] * std::log(x[c] / wh) - x[c];
        r[c] = on ? x[c] / wh : 0.0;
      }
      if (pix && with_loss)
        for (index_t k = 0; k < K; ++k) oldo[k] += prev[k];
      for (index_t k = 0; k < K; ++k) {
        const double* h = Hd.data() + k * C;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (index_t c = 0; c < C; ++c) s += r[c] * h[c];
        p[k] = prev[k] * s;
      }
      surrogate_row(p.data(), maps.beta + i * K, maps.q, maps.simplex, maps.n_bisect, prev.data(),
                    K, a.data());
      for (index_t k = 0; k < K; ++k) {
        const T v = static_cast<T>(a[k]);
        A_out[i * K + k] = v;
        a[k] = static_cast<double>(v);
      }
      if (!pix) continue;
      // Statistics of the new row, all channels.
      for (index_t c = 0; c < C; ++c) r[c] = 0.0;
      for (index_t k = 0; k < K; ++k) {
        const double w = a[k];
        const double* h = Hd.data() + k * C;
#pragma omp simd
        for (index_t c = 0; c < C; ++c) r[c] += w * h[c];
      }
      for (index_t c = 0; c < C; ++c) r[c] = x[c] > 0.0 ? x[c] / std::max(r[c], eps) : 0.0;
      for (index_t k = 0; k < K; ++k) {
        cso[k] += a[k];
        const double w = a[k];
        double* out = ac + k * C;
#pragma omp simd
        for (index_t c = 0; c < C; ++c) out[c] += w * r[c];
      }
    }
    loss_part[tid] += loss;
  });

  for (index_t j = 0; j < K * C; ++j) numerator[j] = acc.sum(j, nt);
  for (index_t k = 0; k < K; ++k) colsum[k] = cs.sum(k, nt);
  if (!with_loss) return 0.0;
  double loss = 0.0;
  for (int t = 0; t < nt; ++t) loss += loss_part[t];
  for (index_t k = 0; k < K; ++k) loss += old.sum(k, nt) * hsum[k];
  return loss;
}

template <class TX, class TI, class T>
double kl_surrogate_pass_csr(CsrView<TX, TI> X, ConstMatrixView<T> A, ConstMatrixView<T> H,
                             SurrogateMaps maps, Masks masks, bool with_loss, T* A_out,
                             double* numerator, double* colsum) {
  detail::check_factors(X.rows, X.cols, A.rows, A.cols, H.rows, H.cols);
  check_maps(maps);
  if (A_out == nullptr || numerator == nullptr || colsum == nullptr)
    throw InvalidArgument("output buffers must not be null");
  const index_t N = X.rows, C = X.cols, K = A.cols;
  check_beta_finite(maps.beta, N * K);
  for (index_t i = 0; i < N; ++i)
    if (X.indptr[i + 1] < X.indptr[i]) throw InvalidArgument("indptr must be non-decreasing");
  const index_t nnz = static_cast<index_t>(X.indptr[N]);
  for (index_t j = 0; j < nnz; ++j)
    if (X.indices[j] < 0 || static_cast<index_t>(X.indices[j]) >= C)
      throw InvalidArgument("indices out of range");
  // H column-major (C x K) so that the K values of one channel are contiguous.
  std::vector<double> Hc(static_cast<std::size_t>(C * K));
  std::vector<double> hsum(static_cast<std::size_t>(K), 0.0);
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c) {
      Hc[c * K + k] = static_cast<double>(H(k, c));
      if (included(masks.channels, c)) hsum[k] += Hc[c * K + k];
    }
  constexpr index_t B = 256;
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Acc acc(nt, K * C, "PhysicsNMF accumulators");
  Acc cs(nt, K, "PhysicsNMF accumulators");
  Acc old(nt, K, "PhysicsNMF accumulators");
  std::vector<double> loss_part(static_cast<std::size_t>(nt), 0.0);
  const double eps = kEpsilon;

  detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
    std::vector<double> prev(K), p(K), a(K);
    double* ac = acc.of(tid);
    double* cso = cs.of(tid);
    double* oldo = old.of(tid);
    double loss = 0.0;
    const index_t i0 = b * B, i1 = std::min(N, i0 + B);
    for (index_t i = i0; i < i1; ++i) {
      const bool pix = included(masks.pixels, i);
      for (index_t k = 0; k < K; ++k) prev[k] = static_cast<double>(A(i, k));
      for (index_t k = 0; k < K; ++k) p[k] = 0.0;
      const index_t j0 = static_cast<index_t>(X.indptr[i]);
      const index_t j1 = static_cast<index_t>(X.indptr[i + 1]);
      for (index_t j = j0; j < j1; ++j) {
        const index_t c = static_cast<index_t>(X.indices[j]);
        const double x = static_cast<double>(X.data[j]);
        if (!(x > 0.0) || !included(masks.channels, c)) continue;
        const double* h = Hc.data() + c * K;
        double wh = 0.0;
        for (index_t k = 0; k < K; ++k) wh += prev[k] * h[k];
        wh = std::max(wh, eps);
        if (pix && with_loss) loss += x * std::log(x / wh) - x;
        const double r = x / wh;
        for (index_t k = 0; k < K; ++k) p[k] += r * h[k];
      }
      if (pix && with_loss)
        for (index_t k = 0; k < K; ++k) oldo[k] += prev[k];
      for (index_t k = 0; k < K; ++k) p[k] *= prev[k];
      surrogate_row(p.data(), maps.beta + i * K, maps.q, maps.simplex, maps.n_bisect, prev.data(),
                    K, a.data());
      for (index_t k = 0; k < K; ++k) {
        const T v = static_cast<T>(a[k]);
        A_out[i * K + k] = v;
        a[k] = static_cast<double>(v);
      }
      if (!pix) continue;
      for (index_t k = 0; k < K; ++k) cso[k] += a[k];
      for (index_t j = j0; j < j1; ++j) {
        const index_t c = static_cast<index_t>(X.indices[j]);
        const double x = static_cast<double>(X.data[j]);
        if (!(x > 0.0)) continue;
        const double* h = Hc.data() + c * K;
        double wh = 0.0;
        for (index_t k = 0; k < K; ++k) wh += a[k] * h[k];
        const double r = x / std::max(wh, eps);
        for (index_t k = 0; k < K; ++k) ac[k * C + c] += a[k] * r;
      }
    }
    loss_part[tid] += loss;
  });

  for (index_t j = 0; j < K * C; ++j) numerator[j] = acc.sum(j, nt);
  for (index_t k = 0; k < K; ++k) colsum[k] = cs.sum(k, nt);
  if (!with_loss) return 0.0;
  double loss = 0.0;
  for (int t = 0; t < nt; ++t) loss += loss_part[t];
  for (index_t k = 0; k < K; ++k) loss += old.sum(k, nt) * hsum[k];
  return loss;
}

#define MATCHAR_PHYS_DENSE(TX, T)                                                              \
  template double kl_surrogate_pass<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>,            \
                                           ConstMatrixView<T>, SurrogateMaps, Masks, bool, T*, \
                                           double*, double*);
#define MATCHAR_PHYS_DENSE_ALL(TX) \
  MATCHAR_PHYS_DENSE(TX, float)    \
  MATCHAR_PHYS_DENSE(TX, double)
MATCHAR_PHYS_DENSE_ALL(std::uint8_t)
MATCHAR_PHYS_DENSE_ALL(std::uint16_t)
MATCHAR_PHYS_DENSE_ALL(std::uint32_t)
MATCHAR_PHYS_DENSE_ALL(float)
MATCHAR_PHYS_DENSE_ALL(double)

#define MATCHAR_PHYS_CSR(TX, TI, T)                                                                \
  template double kl_surrogate_pass_csr<TX, TI, T>(CsrView<TX, TI>, ConstMatrixView<T>,            \
                                                   ConstMatrixView<T>, SurrogateMaps, Masks, bool, \
                                                   T*, double*, double*);
MATCHAR_PHYS_CSR(float, std::int32_t, float)
MATCHAR_PHYS_CSR(float, std::int32_t, double)
MATCHAR_PHYS_CSR(float, std::int64_t, float)
MATCHAR_PHYS_CSR(float, std::int64_t, double)
MATCHAR_PHYS_CSR(double, std::int32_t, float)
MATCHAR_PHYS_CSR(double, std::int32_t, double)
MATCHAR_PHYS_CSR(double, std::int64_t, float)
MATCHAR_PHYS_CSR(double, std::int64_t, double)

}  // namespace matchar::spectral
