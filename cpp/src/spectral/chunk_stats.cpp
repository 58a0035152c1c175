#include "matchar/spectral/chunk_stats.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "blocks.hpp"

namespace matchar::spectral {

template <class TX, class T>
double frobenius_stats(ConstMatrixView<TX> X, ConstMatrixView<T> W, Masks masks, double* XtW,
                       double* WtW) {
  const index_t N = X.rows, C = X.cols, K = W.cols;
  if (N < 1 || C < 1) throw InvalidArgument("X is empty");
  if (W.rows != N || K < 1)
    throw InvalidArgument("W must have shape (" + std::to_string(N) + ", K >= 1), got (" +
                          std::to_string(W.rows) + ", " + std::to_string(K) + ")");
  if (XtW == nullptr || WtW == nullptr) throw InvalidArgument("output buffers must not be null");
  const index_t B = detail::block_rows(C);
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  check_allocation(static_cast<std::size_t>(nt) * static_cast<std::size_t>(C * K + K * K),
                   sizeof(double), "Frobenius statistics accumulators");
  std::vector<detail::RowMat<double>> xtw(nt, detail::RowMat<double>::Zero(C, K));
  std::vector<detail::RowMat<double>> wtw(nt, detail::RowMat<double>::Zero(K, K));
  std::vector<double> sumsq(static_cast<std::size_t>(nt), 0.0);

  detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
    const index_t i0 = b * B, n = std::min(N, i0 + B) - i0;
    detail::RowMat<T> xb, wb(n, K);
    detail::pack_rows(X, i0, n, xb);
    for (index_t i = 0; i < n; ++i) {
      const bool pix = detail::included(masks.pixels, i0 + i);
      for (index_t k = 0; k < K; ++k) wb(i, k) = pix ? W(i0 + i, k) : T(0);
      if (!pix) continue;
      double s = 0.0;
      for (index_t c = 0; c < C; ++c)
        if (detail::included(masks.channels, c)) {
          const double x = static_cast<double>(xb(i, c));
          s += x * x;
        }
      sumsq[tid] += s;
    }
    // Block products in T, accumulated across blocks in float64.
    xtw[tid] += (xb.transpose() * wb).template cast<double>();
    wtw[tid] += (wb.transpose() * wb).template cast<double>();
  });

  double total = 0.0;
  for (index_t j = 0; j < C * K; ++j) XtW[j] = 0.0;
  for (index_t j = 0; j < K * K; ++j) WtW[j] = 0.0;
  for (int t = 0; t < nt; ++t) {  // thread order: deterministic for a fixed thread count
    for (index_t j = 0; j < C * K; ++j) XtW[j] += xtw[t].data()[j];
    for (index_t j = 0; j < K * K; ++j) WtW[j] += wtw[t].data()[j];
    total += sumsq[t];
  }
  return total;
}

#define MATCHAR_FROB_STATS(TX, T)                                                                 \
  template double frobenius_stats<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, Masks, double*, \
                                         double*);
#define MATCHAR_FROB_STATS_T(TX) MATCHAR_FROB_STATS(TX, float) MATCHAR_FROB_STATS(TX, double)
MATCHAR_FROB_STATS_T(std::uint8_t)
MATCHAR_FROB_STATS_T(std::uint16_t)
MATCHAR_FROB_STATS_T(std::uint32_t)
MATCHAR_FROB_STATS_T(float)
MATCHAR_FROB_STATS_T(double)

}  // namespace matchar::spectral
