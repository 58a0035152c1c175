#include "matchar/gp/kernels.hpp"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <string>
#include <vector>

namespace matchar::gp {
namespace {

constexpr index_t kBlockRowsX = 128;
constexpr index_t kBlockRowsY = 256;
constexpr index_t kBlockDepth = 1024;

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// 1/|row| (accumulated in double), 0 for zero rows, or 1 when not normalising.
template <class T>
std::vector<T> row_scales(ConstMatrixView<T> m, bool normalize) {
  std::vector<T> scale(static_cast<std::size_t>(m.rows), T(1));
  if (!normalize) return scale;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (index_t i = 0; i < m.rows; ++i) {
    double s = 0.0;
    for (index_t j = 0; j < m.cols; ++j) {
      const double v = m(i, j);
      s += v * v;
    }
    scale[i] = s > 0.0 ? static_cast<T>(1.0 / std::sqrt(s)) : T(0);
  }
  return scale;
}

// Copy rows [r0, r0 + nr) and columns [c0, c0 + nc) of m, each row times scale[row],
// into the row-major buffer dst (nr x nc).
template <class T>
void pack_block(ConstMatrixView<T> m, const std::vector<T>& scale, index_t r0, index_t nr,
                index_t c0, index_t nc, RowMajor<T>& dst) {
  dst.resize(nr, nc);
  for (index_t i = 0; i < nr; ++i) {
    const T s = scale[r0 + i];
    const T* src = m.data + (r0 + i) * m.row_stride + c0 * m.col_stride;
    T* d = dst.data() + i * nc;
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

template <class T>
void polynomial_kernel(ConstMatrixView<T> X, ConstMatrixView<T> Y, int zeta, bool normalize,
                       T* out) {
  if (X.cols != Y.cols)
    throw InvalidArgument("X and Y must have the same number of features, got X with " +
                          std::to_string(X.cols) + " and Y with " + std::to_string(Y.cols));
  if (X.rows < 1 || X.cols < 1) throw InvalidArgument("X is empty");
  if (Y.rows < 1 || Y.cols < 1) throw InvalidArgument("Y is empty");
  if (zeta < 1) throw InvalidArgument("zeta must be an integer >= 1, got " + std::to_string(zeta));
  if (out == nullptr) throw InvalidArgument("out must not be null");
  require_finite(X, "X");
  require_finite(Y, "Y");

  const std::vector<T> sx = row_scales(X, normalize);
  const std::vector<T> sy = row_scales(Y, normalize);

  const index_t n = X.rows, m = Y.rows, d = X.cols;
  const index_t nbx = (n + kBlockRowsX - 1) / kBlockRowsX;
  const index_t nby = (m + kBlockRowsY - 1) / kBlockRowsY;
  const index_t n_blocks = nbx * nby;

  std::atomic<bool> stop{false};
  std::exception_ptr error;

#pragma omp parallel num_threads(num_threads())
  {
    RowMajor<T> xb, yb;  // per-thread packing buffers, reused across blocks
#pragma omp for schedule(dynamic, 1)
    for (index_t b = 0; b < n_blocks; ++b) {
      if (stop.load(std::memory_order_relaxed)) continue;
      // Exceptions must not cross the OpenMP region: keep the first, stop the rest.
      try {
        const index_t i0 = (b / nby) * kBlockRowsX, j0 = (b % nby) * kBlockRowsY;
        const index_t ni = std::min(kBlockRowsX, n - i0), nj = std::min(kBlockRowsY, m - j0);
        Eigen::Map<RowMajor<T>, 0, Eigen::OuterStride<>> o(out + i0 * m + j0, ni, nj,
                                                           Eigen::OuterStride<>(m));
        for (index_t k0 = 0; k0 < d; k0 += kBlockDepth) {
          const index_t nk = std::min(kBlockDepth, d - k0);
          pack_block(X, sx, i0, ni, k0, nk, xb);
          pack_block(Y, sy, j0, nj, k0, nk, yb);
          if (k0 == 0)
            o.noalias() = xb * yb.transpose();
          else
            o.noalias() += xb * yb.transpose();
        }
        if (zeta != 1) {
          for (index_t i = 0; i < ni; ++i)
            for (index_t j = 0; j < nj; ++j) o(i, j) = integer_power(o(i, j), zeta);
        }
        if (omp_get_thread_num() == 0 && poll_interrupt()) stop.store(true);
      } catch (...) {
#pragma omp critical(matchar_gp_error)
        if (!error) error = std::current_exception();
        stop.store(true);
      }
    }
  }
  if (error) std::rethrow_exception(error);
  if (stop.load()) throw Interrupted();
}

template void polynomial_kernel<float>(ConstMatrixView<float>, ConstMatrixView<float>, int, bool,
                                       float*);
template void polynomial_kernel<double>(ConstMatrixView<double>, ConstMatrixView<double>, int,
                                        bool, double*);

}  // namespace matchar::gp
