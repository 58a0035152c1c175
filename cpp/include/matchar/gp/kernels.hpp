// Kernel functions for Gaussian-process regression on descriptor vectors.
#pragma once

#include "matchar/common.hpp"

namespace matchar::gp {

// Polynomial (dot-product) kernel
//
//     K[i, j] = (x_i . y_j / (|x_i| |y_j|)) ** zeta        (normalize = true)
//     K[i, j] = (x_i . y_j) ** zeta                         (normalize = false)
//
// X: (n, d), Y: (m, d), any strides; out: (n, m) row-major contiguous, written in full.
// Rows of zero norm are treated as zero vectors when normalising, so their kernel
// values are 0 rather than NaN. zeta >= 1 (an integer power).
//
// Fused and blocked: a chunk of Y (up to 2048 rows x 2048 features) is normalised once
// into a shared buffer, blocks of X are normalised while packed per thread, each block
// product goes through Eigen's GEMM and is raised to zeta while still in cache. Extra
// memory is O((2048 + threads * 256) * 2048) elements whatever n, m and d are.
// Threads: OpenMP over blocks of X; throws Interrupted when the interrupt handler asks
// to stop.
template <class T>
void polynomial_kernel(ConstMatrixView<T> X, ConstMatrixView<T> Y, int zeta, bool normalize,
                       T* out);

// The Gram matrix K(X, X), out: (n, n). Same values as polynomial_kernel(X, X, ...), but
// only the upper block triangle is computed and the rest mirrored: half the work.
template <class T>
void polynomial_kernel(ConstMatrixView<T> X, int zeta, bool normalize, T* out);

// The two halves of a polynomial kernel whose product is done elsewhere (e.g. by the
// BLAS GEMM a caller already has: the Python package uses NumPy's for rectangular
// kernels), for K = (scale_x[i] scale_y[j] (X Y^T)[i, j]) ** zeta.
//
// row_scales: out[i] = 1 / |x_i| (0 for zero rows) when normalize, else 1; X (n, d) any
// strides, accumulated in double. Throws InvalidArgument naming `name` when X holds NaN
// or inf (checked in the same pass).
template <class T>
void kernel_row_scales(ConstMatrixView<T> X, bool normalize, const char* name, T* out);

// In place on the row-major block (rows x cols, leading dimension ld >= cols):
// block[i, j] = (block[i, j] * row_scale[i] * col_scale[j]) ** zeta. OpenMP over rows with
// `threads` threads (0: num_threads()).
template <class T>
void scale_and_power(T* block, index_t rows, index_t cols, index_t ld, const T* row_scale,
                     const T* col_scale, int zeta, int threads = 0);

}  // namespace matchar::gp
