// NMF with the Frobenius loss: HALS for dense and CSR counts, and the coordinate descent
// the blocked kernels call back into.
#include "matchar/spectral/nmf.hpp"
#include "nmf_common.hpp"

namespace matchar::spectral {

// `sweeps` sweeps, or fewer once one leaves w unchanged (every later one would too: the
// result is the same, and a huge `sweeps` cannot hang a pass).
void detail::cd_sweeps(double* w, const double* G, const double* b, index_t K, int sweeps) {
  for (int sw = 0; sw < sweeps; ++sw)
    if (!cd_sweep(w, G, b, K)) break;
}

// ---------------------------------------------------------------------------
// Frobenius HALS, dense X
// ---------------------------------------------------------------------------
template <class TX, class T>
double hals_update_stats(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                         Masks masks, int sweeps, T* W_out, double* WtX, double* WtW_out) {
  const index_t N = X.rows, C = X.cols, K = W.cols;
  detail::check_factors(N, C, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || WtX == nullptr || WtW_out == nullptr)
    throw InvalidArgument("output buffers must not be null");
  if (sweeps < 1) throw InvalidArgument("sweeps must be >= 1");

  RowMat<T> Hm = detail::to_matrix(H);  // excluded channels zeroed: they do not drive W
  for (index_t c = 0; c < C; ++c)
    if (!included(masks.channels, c)) Hm.col(c).setZero();
  const RowMat<double> Hd = Hm.template cast<double>();
  const RowMat<double> HHt = Hd * Hd.transpose();
  const T* Hp = Hm.data();
  const RowOps<T> ops = row_ops<T>(K);

  constexpr index_t B = 64;
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Accumulators acc(nt, K * C, "HALS accumulators");
  Accumulators wtw(nt, K * K, "HALS accumulators");
  std::vector<double> sumsq_part(static_cast<std::size_t>(nt), 0.0);

  const HalsBlockArgs<T> blocked{row_source<T>(X),
                                 W,
                                 H,
                                 masks,
                                 HHt.data(),
                                 sweeps,
                                 W_out,
                                 nt,
                                 acc.data.data(),
                                 acc.size,
                                 wtw.data.data(),
                                 wtw.size,
                                 sumsq_part.data()};
  if (!detail::blocked_kernels_for<T>().hals(blocked))
    detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
      thread_local std::vector<T> x, xm, accb;
      x.resize(C);
      accb.assign(static_cast<std::size_t>(K * C), T(0));
      std::vector<double> w(K), xh(K);
      double* g = wtw.of(tid);
      double sumsq = 0.0;
      const index_t i0 = b * B, i1 = std::min(N, i0 + B);
      for (index_t i = i0; i < i1; ++i) {
        load_row(X, i, x.data());
        for (index_t k = 0; k < K; ++k) w[k] = W(i, k);
        ops.dots(x.data(), Hp, K, C, xh.data());
        cd_sweeps(w.data(), HHt.data(), xh.data(), K, sweeps);
        for (index_t k = 0; k < K; ++k) {
          W_out[i * K + k] = static_cast<T>(w[k]);
          w[k] = static_cast<double>(W_out[i * K + k]);
        }
        if (!included(masks.pixels, i)) continue;  // excluded pixels do not drive H
        for (index_t k = 0; k < K; ++k)
          for (index_t l = 0; l < K; ++l) g[k * K + l] += w[k] * w[l];
        if (masks.channels == nullptr) {
          sumsq += dot(x.data(), x.data(), C);
        } else {
          for (index_t c = 0; c < C; ++c)
            if (masks.channels[c]) sumsq += static_cast<double>(x[c]) * x[c];
        }
        for (index_t k = 0; k < K; ++k) {
          const T wk = static_cast<T>(w[k]);
          T* __restrict a = accb.data() + k * C;
          const T* __restrict xr = x.data();
#pragma omp simd
          for (index_t c = 0; c < C; ++c) a[c] += wk * xr[c];
        }
      }
      sumsq_part[tid] += sumsq;
      double* a = acc.of(tid);
      for (index_t j = 0; j < K * C; ++j) a[j] += static_cast<double>(accb[j]);
    });

  for (index_t j = 0; j < K * C; ++j) WtX[j] = acc.sum(j);
  for (index_t j = 0; j < K * K; ++j) WtW_out[j] = wtw.sum(j);
  double sumsq = 0.0;
  for (int t = 0; t < nt; ++t) sumsq += sumsq_part[t];
  return sumsq;
}

template <class TX, class T>
double hals_update(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                   bool update_H, T* W_out, T* H_out, int sweeps) {
  const index_t C = X.cols, K = W.cols;
  if (update_H && H_out == nullptr) throw InvalidArgument("output buffers must not be null");
  std::vector<double> xtw(static_cast<std::size_t>(K * C)), WtW(static_cast<std::size_t>(K * K));
  const double sumsq = hals_update_stats(X, W, H, masks, sweeps, W_out, xtw.data(), WtW.data());
  return finish_hals(
      H, masks, update_H, [&](index_t k, index_t c) { return xtw[k * C + c]; }, WtW, sumsq, H_out,
      sweeps);
}

template <class TX, class TI, class T>
double hals_update_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                       bool update_H, T* W_out, T* H_out, int sweeps) {
  const index_t N = X.rows, C = X.cols, K = W.cols;
  detail::check_factors(N, C, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || (update_H && H_out == nullptr))
    throw InvalidArgument("output buffers must not be null");
  if (sweeps < 1) throw InvalidArgument("sweeps must be >= 1");

  RowMat<double> Ht = detail::to_matrix<T, double>(H).transpose();  // C x K
  for (index_t c = 0; c < C; ++c)
    if (!included(masks.channels, c)) Ht.row(c).setZero();
  const RowMat<double> HHt = Ht.transpose() * Ht;

  constexpr index_t B = 256;
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Accumulators acc(nt, C * K, "HALS accumulators");  // C x K per thread
  Accumulators wtw(nt, K * K, "HALS accumulators");
  std::vector<double> sumsq_part(static_cast<std::size_t>(nt), 0.0);

  detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
    std::vector<double> w(K), xh(K);
    const index_t i0 = b * B, i1 = std::min(N, i0 + B);
    double* g = wtw.of(tid);
    double* a = acc.of(tid);
    double sumsq = 0.0;
    for (index_t i = i0; i < i1; ++i) {
      const auto p0 = static_cast<index_t>(X.indptr[i]), p1 = static_cast<index_t>(X.indptr[i + 1]);
      for (index_t k = 0; k < K; ++k) {
        w[k] = W(i, k);
        xh[k] = 0.0;
      }
      for (index_t p = p0; p < p1; ++p) {
        const double x = static_cast<double>(X.data[p]);
        const double* h = Ht.data() + static_cast<index_t>(X.indices[p]) * K;
        for (index_t k = 0; k < K; ++k) xh[k] += x * h[k];
      }
      cd_sweeps(w.data(), HHt.data(), xh.data(), K, sweeps);
      for (index_t k = 0; k < K; ++k) {
        W_out[i * K + k] = static_cast<T>(w[k]);
        w[k] = static_cast<double>(W_out[i * K + k]);
      }
      if (!included(masks.pixels, i)) continue;
      for (index_t k = 0; k < K; ++k)
        for (index_t l = 0; l < K; ++l) g[k * K + l] += w[k] * w[l];
      for (index_t p = p0; p < p1; ++p) {
        const double x = static_cast<double>(X.data[p]);
        const auto c = static_cast<index_t>(X.indices[p]);
        if (included(masks.channels, c)) sumsq += x * x;
        for (index_t k = 0; k < K; ++k) a[c * K + k] += x * w[k];
      }
    }
    sumsq_part[tid] += sumsq;
  });

  std::vector<double> xtw(static_cast<std::size_t>(K * C)), WtW(static_cast<std::size_t>(K * K));
  for (index_t j = 0; j < K * C; ++j) xtw[j] = acc.sum(j);
  for (index_t j = 0; j < K * K; ++j) WtW[j] = wtw.sum(j);
  double sumsq = 0.0;
  for (int t = 0; t < nt; ++t) sumsq += sumsq_part[t];
  return finish_hals(
      H, masks, update_H, [&](index_t k, index_t c) { return xtw[c * K + k]; }, WtW, sumsq, H_out,
      sweeps);
}

#define MATCHAR_HALS_DENSE(TX, T)                                                                 \
  template double hals_update<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, ConstMatrixView<T>, \
                                     Masks, bool, T*, T*, int);                                   \
  template double hals_update_stats<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>,               \
                                           ConstMatrixView<T>, Masks, int, T*, double*, double*);
#define MATCHAR_HALS_CSR(TX, TI, T)                                               \
  template double hals_update_csr<TX, TI, T>(CsrView<TX, TI>, ConstMatrixView<T>, \
                                             ConstMatrixView<T>, Masks, bool, T*, T*, int);
MATCHAR_NMF_INSTANTIATE(MATCHAR_HALS_DENSE, MATCHAR_HALS_CSR)

}  // namespace matchar::spectral
