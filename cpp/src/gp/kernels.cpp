#include "matchar/gp/kernels.hpp"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../parallel.hpp"

namespace matchar::gp {
namespace {

// Blocks: a shared, normalised chunk of Y (kChunkY rows x kBlockDepth features, 32 MB
// in float64) is multiplied by per-thread blocks of X (kBlockRowsX rows), so Eigen's
// GEMM sees large panels and extra memory stays bounded whatever n, m and d are.
constexpr index_t kBlockRowsX = 256;
constexpr index_t kChunkY = 2048;
constexpr index_t kBlockDepth = 2048;

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Sum of squares of one contiguous row, accumulated in double (vectorised: the float32
// values are widened in SIMD lanes, several partial sums in flight).
template <class T>
inline double contiguous_sum_of_squares(const T* __restrict x, index_t len) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t j = 0; j < len; ++j) {
    const double v = static_cast<double>(x[j]);
    s += v * v;
  }
  return s;
}

// Squared row norms of X (n x d) into sq (double), reading X in its own layout: along the
// rows when they are contiguous (C order, row slices), down the columns in panels of rows
// when the columns are (Fortran order, transposed views), strided otherwise.
template <class T>
void squared_row_norms(ConstMatrixView<T> X, double* sq) {
  const index_t n = X.rows, d = X.cols;
  const int threads = X.rows * X.cols > (1 << 18) ? num_threads() : 1;
  if (X.col_stride == 1 || d == 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (index_t i = 0; i < n; ++i) sq[i] = contiguous_sum_of_squares(X.data + i * X.row_stride, d);
  } else if (X.row_stride == 1) {
    constexpr index_t panel = 512;  // 4 KB of accumulators, X read column by column
    const index_t npanels = (n + panel - 1) / panel;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (index_t p = 0; p < npanels; ++p) {
      const index_t i0 = p * panel, ni = std::min(panel, n - i0);
      double acc[panel];
      std::fill(acc, acc + ni, 0.0);
      for (index_t j = 0; j < d; ++j) {
        const T* __restrict col = X.data + i0 + j * X.col_stride;
#pragma omp simd
        for (index_t i = 0; i < ni; ++i) {
          const double v = static_cast<double>(col[i]);
          acc[i] += v * v;
        }
      }
      std::copy(acc, acc + ni, sq + i0);
    }
  } else {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (index_t i = 0; i < n; ++i) {
      double s = 0.0;
      for (index_t j = 0; j < d; ++j) {
        const double v = X(i, j);
        s += v * v;
      }
      sq[i] = s;
    }
  }
}

// 1/|row| (accumulated in double), 0 for zero rows, or 1 when not normalising.
template <class T>
std::vector<T> row_scales(ConstMatrixView<T> m, bool normalize) {
  std::vector<T> scale(static_cast<std::size_t>(m.rows), T(1));
  if (!normalize) return scale;
  std::vector<double> sq(static_cast<std::size_t>(m.rows));
  squared_row_norms(m, sq.data());
  for (index_t i = 0; i < m.rows; ++i)
    scale[i] = sq[i] > 0.0 ? static_cast<T>(1.0 / std::sqrt(sq[i])) : T(0);
  return scale;
}

// Copy rows [r0, r0 + nr) and columns [c0, c0 + nc) of m, each row times scale[row],
// into the row-major buffer dst (nr x nc).
template <class T>
void pack_rows(ConstMatrixView<T> m, const std::vector<T>& scale, index_t r0, index_t nr,
               index_t c0, index_t nc, T* dst) {
  for (index_t i = 0; i < nr; ++i) {
    const T s = scale[r0 + i];
    const T* src = m.data + (r0 + i) * m.row_stride + c0 * m.col_stride;
    T* d = dst + i * nc;
    if (m.col_stride == 1) {
      for (index_t j = 0; j < nc; ++j) d[j] = src[j] * s;
    } else {
      for (index_t j = 0; j < nc; ++j) d[j] = src[j * m.col_stride] * s;
    }
  }
}

template <class T>
inline T integer_power(T v, int zeta) {
  T result = T(1);
  while (zeta > 0) {
    if (zeta & 1) result *= v;
    v *= v;
    zeta >>= 1;
  }
  return result;
}

}  // namespace

namespace {

// out is n x n with every row i filled from column blockstart(i) on; copy the strict
// lower triangle from the upper one (so the result is exactly symmetric), in tiles.
template <class T>
void mirror_lower(T* out, index_t n) {
  constexpr index_t tile = 64;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
  for (index_t i0 = 0; i0 < n; i0 += tile) {
    const index_t i1 = std::min(n, i0 + tile);
    for (index_t j0 = 0; j0 < i1; j0 += tile) {
      const index_t j1 = std::min(n, j0 + tile);
      for (index_t i = i0; i < i1; ++i)
        for (index_t j = j0; j < std::min(j1, i); ++j) out[i * n + j] = out[j * n + i];
    }
  }
}

// The blocked product behind both entry points. With `symmetric` (Y is X) only the
// blocks on and above the diagonal are computed and the rest is mirrored: half the work.
template <class T>
void kernel_blocks(ConstMatrixView<T> X, ConstMatrixView<T> Y, int zeta, bool normalize,
                   bool symmetric, T* out) {
  if (X.cols != Y.cols)
    throw InvalidArgument("X and Y must have the same number of features, got X with " +
                          std::to_string(X.cols) + " and Y with " + std::to_string(Y.cols));
  if (X.rows < 1 || X.cols < 1) throw InvalidArgument("X is empty");
  if (Y.rows < 1 || Y.cols < 1) throw InvalidArgument("Y is empty");
  if (zeta < 1) throw InvalidArgument("zeta must be an integer >= 1, got " + std::to_string(zeta));
  if (out == nullptr) throw InvalidArgument("out must not be null");
  require_finite(X, "X");
  if (!symmetric) require_finite(Y, "Y");

  const std::vector<T> sx = row_scales(X, normalize);
  const std::vector<T> sy = symmetric ? sx : row_scales(Y, normalize);

  const index_t n = X.rows, m = Y.rows, d = X.cols;
  const index_t nbx = (n + kBlockRowsX - 1) / kBlockRowsX;

  matchar::detail::ParallelGuard guard;
  RowMajor<T> yb;  // shared chunk of normalised Y

  for (index_t j0 = 0; j0 < m && !guard.stopped(); j0 += kChunkY) {
    const index_t nj = std::min(kChunkY, m - j0);
    for (index_t k0 = 0; k0 < d && !guard.stopped(); k0 += kBlockDepth) {
      const index_t nk = std::min(kBlockDepth, d - k0);
      const bool last_depth = k0 + nk == d;
      yb.resize(nj, nk);
      guard.begin_region();
#pragma omp parallel num_threads(num_threads())
      {
#pragma omp for schedule(static)
        for (index_t j = 0; j < nj; ++j) pack_rows(Y, sy, j0 + j, 1, k0, nk, yb.data() + j * nk);

        RowMajor<T> xb;  // per-thread block of normalised X
#pragma omp for schedule(dynamic, 1) nowait
        for (index_t b = 0; b < nbx; ++b) {
          guard.step([&] {
            const index_t i0 = b * kBlockRowsX, ni = std::min(kBlockRowsX, n - i0);
            // Symmetric: columns left of this block's first row come from the mirror.
            const index_t js = symmetric ? std::max(j0, i0) : j0;
            if (js >= j0 + nj) return;
            const index_t nw = j0 + nj - js;
            xb.resize(ni, nk);
            pack_rows(X, sx, i0, ni, k0, nk, xb.data());
            Eigen::Map<RowMajor<T>, 0, Eigen::OuterStride<>> o(out + i0 * m + js, ni, nw,
                                                               Eigen::OuterStride<>(m));
            const auto yw = yb.middleRows(js - j0, nw);
            if (k0 == 0)
              o.noalias() = xb * yw.transpose();
            else
              o.noalias() += xb * yw.transpose();
            if (last_depth && zeta != 1) {
              for (index_t i = 0; i < ni; ++i)
                for (index_t j = 0; j < nw; ++j) o(i, j) = integer_power(o(i, j), zeta);
            }
          });
        }
        guard.arrive(omp_get_num_threads());
      }
    }
  }
  guard.finish();
  if (symmetric) mirror_lower(out, n);
}

}  // namespace

template <class T>
void polynomial_kernel(ConstMatrixView<T> X, ConstMatrixView<T> Y, int zeta, bool normalize,
                       T* out) {
  kernel_blocks(X, Y, zeta, normalize, /*symmetric=*/false, out);
}

template <class T>
void polynomial_kernel(ConstMatrixView<T> X, int zeta, bool normalize, T* out) {
  kernel_blocks(X, X, zeta, normalize, /*symmetric=*/true, out);
}

template <class T>
void kernel_row_scales(ConstMatrixView<T> X, bool normalize, const char* name, T* out) {
  if (out == nullptr) throw InvalidArgument("out must not be null");
  std::vector<double> sq(static_cast<std::size_t>(X.rows));
  squared_row_norms(X, sq.data());
  bool finite = true;
  for (index_t i = 0; i < X.rows; ++i) {
    const double s = sq[i];
    finite = finite && std::isfinite(s);  // NaN/inf anywhere in the row makes s NaN/inf
    out[i] = !normalize ? T(1) : (s > 0.0 ? static_cast<T>(1.0 / std::sqrt(s)) : T(0));
  }
  if (!finite) {
    require_finite(X, name);  // the usual message, naming the argument
    throw InvalidArgument(std::string(name) + " has rows whose squared norm overflows float64");
  }
}

template <class T>
void scale_and_power(T* block, index_t rows, index_t cols, index_t ld, const T* row_scale,
                     const T* col_scale, int zeta, int threads) {
  if (zeta < 1) throw InvalidArgument("zeta must be an integer >= 1, got " + std::to_string(zeta));
  if (ld < cols) throw InvalidArgument("scale_and_power: ld must be >= cols");
  if (block == nullptr || row_scale == nullptr || col_scale == nullptr)
    throw InvalidArgument("scale_and_power: null pointer");
  const int team = threads > 0 ? threads : num_threads();
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1 && rows * cols > (1 << 18))
  for (index_t i = 0; i < rows; ++i) {
    T* __restrict r = block + i * ld;
    const T si = row_scale[i];
    if (zeta == 2) {
#pragma omp simd
      for (index_t j = 0; j < cols; ++j) {
        const T v = r[j] * si * col_scale[j];
        r[j] = v * v;
      }
    } else {
      for (index_t j = 0; j < cols; ++j) r[j] = integer_power(r[j] * si * col_scale[j], zeta);
    }
  }
}

template void kernel_row_scales<float>(ConstMatrixView<float>, bool, const char*, float*);
template void kernel_row_scales<double>(ConstMatrixView<double>, bool, const char*, double*);
template void scale_and_power<float>(float*, index_t, index_t, index_t, const float*, const float*,
                                     int, int);
template void scale_and_power<double>(double*, index_t, index_t, index_t, const double*,
                                      const double*, int, int);
template void polynomial_kernel<float>(ConstMatrixView<float>, ConstMatrixView<float>, int, bool,
                                       float*);
template void polynomial_kernel<double>(ConstMatrixView<double>, ConstMatrixView<double>, int, bool,
                                        double*);
template void polynomial_kernel<float>(ConstMatrixView<float>, int, bool, float*);
template void polynomial_kernel<double>(ConstMatrixView<double>, int, bool, double*);

}  // namespace matchar::gp
