// Physics-constrained NMF (PhysicsNMF): one blocked pass of the KL multiplicative
// updates in which the maps update is the exact minimiser of a per-pixel majorising
// surrogate with a quadratic term, a linear term and an optional simplex constraint.
//
// X (N x C) ~ A H, A (N x K) the maps, H (K x C) the components (H = (G W)^T is formed by
// the caller). For every pixel i, with p_ik = A_ik sum_c H_kc x_ic / (A H)_ic (the Jensen
// numerator of the KL loss), the new maps row minimises
//   sum_k [ q/2 a_k^2 + beta_ik a_k - p_ik log a_k ]        (a >= 0)
// optionally subject to sum_k a_k = 1 (a Lagrange multiplier nu_i found by bisection):
//   a_k = the non-negative root of q a^2 + (beta_ik + nu_i) a - p_ik = 0.
// beta carries the KL term sum_c H_kc plus whatever the caller's regularisers linearise
// (sparsity, the neighbour part of a Laplacian); q the curvature bound of the Laplacian.
// From the new row, still in cache, the pass accumulates what the component update needs:
//   numerator(k, c) = sum_i a_ik x_ic / (a_i H)_c     colsum(k) = sum_i a_ik
// over the included pixels (numerator over all channels), exactly as kl_update_stats.
// Pixels whose p is all zero (no counts) keep their maps.
#pragma once

#include "matchar/common.hpp"
#include "matchar/spectral/nmf.hpp"

namespace matchar::spectral {

struct SurrogateMaps {
  const double* beta = nullptr;  // N x K row-major, the linear coefficients
  double q = 0.0;                // curvature (>= 0)
  bool simplex = false;          // rows of the new maps sum to 1
  int n_bisect = 60;             // bisection steps for the simplex multiplier
};

// The new maps row a (K) from p (K), beta (K), previous row prev (K).
void surrogate_row(const double* p, const double* beta, double q, bool simplex, int n_bisect,
                   const double* prev, index_t K, double* a);

// Returns the KL divergence of the input state (A, H) over the included entries when
// with_loss (else 0); A_out gets the new maps, numerator (K x C) and colsum (K) the
// component statistics.
template <class TX, class T>
double kl_surrogate_pass(ConstMatrixView<TX> X, ConstMatrixView<T> A, ConstMatrixView<T> H,
                         SurrogateMaps maps, Masks masks, bool with_loss, T* A_out,
                         double* numerator, double* colsum);
template <class TX, class TI, class T>
double kl_surrogate_pass_csr(CsrView<TX, TI> X, ConstMatrixView<T> A, ConstMatrixView<T> H,
                             SurrogateMaps maps, Masks masks, bool with_loss, T* A_out,
                             double* numerator, double* colsum);

}  // namespace matchar::spectral
