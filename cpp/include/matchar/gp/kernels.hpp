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
// Fused and blocked: rows are normalised while packing blocks of X and Y into
// per-thread buffers, each block product goes through Eigen's GEMM and is raised to
// zeta while still in cache. Extra memory is O(threads * block * d_block), independent
// of n and m. Threads: OpenMP over output blocks; throws Interrupted when the
// interrupt handler asks to stop.
template <class T>
void polynomial_kernel(ConstMatrixView<T> X, ConstMatrixView<T> Y, int zeta, bool normalize,
                       T* out);

}  // namespace matchar::gp
