// Blocked products with a spectrum image under diagonal weights, the building blocks
// of a randomized SVD that never forms the weighted (or centred) matrix
//   A = diag(r) X diag(c) - 1 offset^T          (X: N x C, r: N, c: C)
// Keenan-Kotula Poisson weighting is r = 1/sqrt(image), c = 1/sqrt(spectrum).
// X element types as in nmf.hpp (float, double, uint8/16/32), read in place.
#pragma once

#include "matchar/common.hpp"

namespace matchar::spectral {

// Row and column sums of diag(r) X diag(c) (float64) and the sum of its squares.
// r or c may be nullptr (all ones). row_sums: N, col_sums: C.
template <class TX>
double weighted_sums(ConstMatrixView<TX> X, const double* r, const double* c, double* row_sums,
                     double* col_sums);

// Y = diag(r) X diag(c) V - 1 offset^T, V: C x L (any strides), offset: L or nullptr.
// Y: N x L row-major, written in full.
template <class TX, class T>
void weighted_project(ConstMatrixView<TX> X, const double* r, const double* c, ConstMatrixView<T> V,
                      const double* offset, T* Y);

// With Y = A V (A as above), in one pass so that each block of Y stays in cache:
//   Z = (diag(r) X diag(c))^T Y     (C x L, row-major float64)
//   s = 1^T Y                       (L, float64)
// so that A^T A V = Z - mean s^T when offset = mean^T V: the Gram
// product of the centred weighted matrix, the one step of a subspace iteration.
template <class TX, class T>
void weighted_gram_apply(ConstMatrixView<TX> X, const double* r, const double* c,
                         ConstMatrixView<T> V, const double* offset, double* Z, double* s);

}  // namespace matchar::spectral
