#include "matchar/spectral/svd.hpp"

#include <cstdint>
#include <vector>

#include "blocks.hpp"
#include "nmf_blocked.hpp"
#include "row_source.hpp"

namespace matchar::spectral {

using detail::RowMat;

template <class TX>
double weighted_sums(ConstMatrixView<TX> X, const double* r, const double* c, double* row_sums,
                     double* col_sums) {
  const index_t N = X.rows, C = X.cols;
  if (N < 1 || C < 1) throw InvalidArgument("X is empty");
  const int nt = num_threads();
  check_allocation(static_cast<std::size_t>(nt) * static_cast<std::size_t>(C), sizeof(double),
                   "weighted_sums accumulators");
  std::vector<double> cols(static_cast<std::size_t>(nt) * C, 0.0), sq(nt, 0.0);
  constexpr index_t B = 256;
  detail::for_blocks((N + B - 1) / B, nt, [&](index_t b, int tid) {
    double* cs = cols.data() + static_cast<std::size_t>(tid) * C;
    double s2 = 0.0;
    for (index_t i = b * B; i < std::min(N, (b + 1) * B); ++i) {
      const double ri = r ? r[i] : 1.0;
      double rs = 0.0;
      for (index_t j = 0; j < C; ++j) {
        const double v = static_cast<double>(X(i, j)) * ri * (c ? c[j] : 1.0);
        rs += v;
        cs[j] += v;
        s2 += v * v;
      }
      if (row_sums) row_sums[i] = rs;
    }
    sq[tid] += s2;
  });
  double total = 0.0;
  for (int t = 0; t < nt; ++t) total += sq[t];
  if (col_sums)
    for (index_t j = 0; j < C; ++j) {
      double s = 0.0;
      for (int t = 0; t < nt; ++t) s += cols[static_cast<std::size_t>(t) * C + j];
      col_sums[j] = s;
    }
  return total;
}

namespace {
template <class T>
void check_projection(index_t N, index_t C, ConstMatrixView<T> V) {
  if (N < 1 || C < 1) throw InvalidArgument("X is empty");
  if (V.rows != C || V.cols < 1)
    throw InvalidArgument("V must have shape (" + std::to_string(C) + ", L >= 1), got (" +
                          std::to_string(V.rows) + ", " + std::to_string(V.cols) + ")");
}
}  // namespace

template <class TX, class T>
void weighted_project(ConstMatrixView<TX> X, const double* r, const double* c, ConstMatrixView<T> V,
                      const double* offset, T* Y) {
  const index_t N = X.rows, C = X.cols, L = V.cols;
  check_projection(N, C, V);
  const RowMat<T> Vm = detail::to_matrix(V);
  const index_t B = detail::block_rows(C);
  detail::for_blocks((N + B - 1) / B, num_threads(), [&](index_t b, int) {
    thread_local RowMat<T> Xb;
    const index_t i0 = b * B, nb = std::min(B, N - i0);
    detail::pack_rows(X, i0, nb, Xb, r, c);
    Eigen::Map<RowMat<T>> y(Y + i0 * L, nb, L);
    y.noalias() = Xb * Vm;
    if (offset)
      for (index_t i = 0; i < nb; ++i)
        for (index_t l = 0; l < L; ++l) y(i, l) -= static_cast<T>(offset[l]);
  });
}

template <class TX, class T>
void weighted_gram_apply(ConstMatrixView<TX> X, const double* r, const double* c,
                         ConstMatrixView<T> V, const double* offset, double* Z, double* s) {
  const index_t N = X.rows, C = X.cols, L = V.cols;
  check_projection(N, C, V);
  const RowMat<T> Vm = detail::to_matrix(V);
  const int nt = num_threads();
  check_allocation(static_cast<std::size_t>(nt) * static_cast<std::size_t>(C * L + L),
                   sizeof(double), "weighted_gram_apply accumulators");
  std::vector<double> acc(static_cast<std::size_t>(nt) * (C * L + L), 0.0);
  // L <= kMaxGramL: the register-blocked pass of the CPU's level (L x C per thread)
  const detail::GramBlockArgs<T> blocked{
      detail::row_source<T>(X), r, c, V, offset, nt, acc.data(), C * L + L};
  if (L <= detail::kMaxGramL && detail::blocked_kernels_for<T>().gram(blocked)) {
    for (index_t l = 0; l < L; ++l) {
      for (index_t j = 0; j < C; ++j) {
        double v = 0.0;
        for (int t = 0; t < nt; ++t)
          v += acc[static_cast<std::size_t>(t) * (C * L + L) + l * C + j];
        Z[j * L + l] = v;
      }
      double v = 0.0;
      for (int t = 0; t < nt; ++t) v += acc[static_cast<std::size_t>(t) * (C * L + L) + C * L + l];
      s[l] = v;
    }
    return;
  }
  const index_t B = detail::block_rows(C);
  detail::for_blocks((N + B - 1) / B, nt, [&](index_t b, int tid) {
    thread_local RowMat<T> Xb, Yb, Zb;
    const index_t i0 = b * B, nb = std::min(B, N - i0);
    detail::pack_rows(X, i0, nb, Xb, r, c);
    Yb.noalias() = Xb * Vm;
    if (offset)
      for (index_t i = 0; i < nb; ++i)
        for (index_t l = 0; l < L; ++l) Yb(i, l) -= static_cast<T>(offset[l]);
    Zb.noalias() = Xb.transpose() * Yb;  // C x L
    double* a = acc.data() + static_cast<std::size_t>(tid) * (C * L + L);
    const T* z = Zb.data();
    for (index_t j = 0; j < C * L; ++j) a[j] += static_cast<double>(z[j]);
    for (index_t i = 0; i < nb; ++i)
      for (index_t l = 0; l < L; ++l) a[C * L + l] += static_cast<double>(Yb(i, l));
  });
  for (index_t j = 0; j < C * L + L; ++j) {
    double v = 0.0;
    for (int t = 0; t < nt; ++t) v += acc[static_cast<std::size_t>(t) * (C * L + L) + j];
    if (j < C * L)
      Z[j] = v;
    else
      s[j - C * L] = v;
  }
}

#define MATCHAR_SVD_X(TX)                                                                          \
  template double weighted_sums<TX>(ConstMatrixView<TX>, const double*, const double*, double*,    \
                                    double*);                                                      \
  template void weighted_project<TX, float>(ConstMatrixView<TX>, const double*, const double*,     \
                                            ConstMatrixView<float>, const double*, float*);        \
  template void weighted_project<TX, double>(ConstMatrixView<TX>, const double*, const double*,    \
                                             ConstMatrixView<double>, const double*, double*);     \
  template void weighted_gram_apply<TX, float>(ConstMatrixView<TX>, const double*, const double*,  \
                                               ConstMatrixView<float>, const double*, double*,     \
                                               double*);                                           \
  template void weighted_gram_apply<TX, double>(ConstMatrixView<TX>, const double*, const double*, \
                                                ConstMatrixView<double>, const double*, double*,   \
                                                double*);

MATCHAR_SVD_X(std::uint8_t)
MATCHAR_SVD_X(std::uint16_t)
MATCHAR_SVD_X(std::uint32_t)
MATCHAR_SVD_X(float)
MATCHAR_SVD_X(double)

}  // namespace matchar::spectral
