// Non-negative matrix factorisation of spectrum images, X (N pixels x C channels) ~ W H,
// W (N x K) the abundance maps, H (K x C) the component spectra.
//
// One call = one iteration: a single pass over X in blocks of pixels that updates W
// (row-local given H) and, from the updated rows still in cache, accumulates what the H
// update needs. W @ H and X / (W @ H) are never materialised: the extra memory is a few
// blocks per thread plus a K x C float64 accumulator per thread. The new factors go to
// W_out / H_out, so an interrupted iteration leaves W and H untouched (the last
// consistent state). Reductions run in a fixed order: for a fixed thread count the
// result is bitwise reproducible.
//
// X element types: float, double and unsigned integer counts (uint8/16/32), read in
// place through strides; the factors are float or double with float64 accumulation.
#pragma once

#include <cstdint>

#include "matchar/common.hpp"

namespace matchar::spectral {

// Pixels / channels that take part in the fit: nullptr = all; otherwise arrays of
// length N / C holding 1 (included) or 0 (excluded). An excluded pixel does not
// influence H, but its row of W is still fitted (to the included channels) given H; an
// excluded channel does not influence W, but its column of H is fitted given W.
struct Masks {
  const std::uint8_t* pixels = nullptr;
  const std::uint8_t* channels = nullptr;
};

// A compressed-sparse-row matrix (scipy.sparse.csr_matrix layout), indices sorted or not.
template <class TX, class TI>
struct CsrView {
  const TX* data = nullptr;
  const TI* indices = nullptr;
  const TI* indptr = nullptr;  // rows + 1 entries
  index_t rows = 0;
  index_t cols = 0;
};

// The floor applied to W H where a count is divided by it, and to zero denominators
// (float32's machine epsilon, as in scikit-learn).
constexpr double kEpsilon = 1.1920928955078125e-07;

// One multiplicative update of the generalised Kullback-Leibler (Poisson) loss
// (Lee & Seung), W first, then H with the new W, exactly scikit-learn's 'mu' solver
// with beta_loss=1:
//   W <- W * ((X / WH) H^T) / (1 H^T)           (sums over included channels)
//   H <- H * (W^T (X / WH)) / (W^T 1)           (sums over included pixels)
// Only non-zero counts are divided. With update_H = false only W_out is written.
// Returns the KL divergence D(X || W H) of the input state (W, H) over the included
// entries when with_loss, else 0 (the logarithms are the expensive part of a pass).
template <class TX, class T>
double kl_update(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                 bool update_H, bool with_loss, T* W_out, T* H_out);
template <class TX, class TI, class T>
double kl_update_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                     bool update_H, bool with_loss, T* W_out, T* H_out);

// n_iter multiplicative W updates with H fixed (all pixels and channels), exactly
// n_iter calls of kl_update(update_H = false) chained through W_out, but in one pass:
// each row of X is loaded once and its maps iterated while it is in cache, in one
// OpenMP region (rows are independent when H is fixed). For streaming and transform.
template <class TX, class T>
void kl_update_maps(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, int n_iter,
                    T* W_out);

// The same pass without the H update, for callers that reduce over several blocks of
// pixels (Dask chunks, streaming) or update the components their own way (PhysicsNMF,
// where components = (G W)^T): W_out gets the maps updated given H, and
//   numerator(k, c) = sum_i W_new(i, k) x_ic / (W_new H)_ic   (K x C, row-major, float64)
//   colsum(k)       = sum_i W_new(i, k)                          (K, float64)
// over the included pixels (numerator: all channels). Summed over blocks, they give
// exactly kl_update's H update: H_new = H * numerator / colsum (floored as there).
// Returns the KL divergence of the input state over the block (additive over blocks)
// when with_loss, else 0.
template <class TX, class T>
double kl_update_stats(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                       Masks masks, bool with_loss, T* W_out, double* numerator, double* colsum);
template <class TX, class TI, class T>
double kl_update_stats_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                           Masks masks, bool with_loss, T* W_out, double* numerator,
                           double* colsum);

// One HALS / cyclic coordinate-descent sweep of the Frobenius loss 0.5 |X - W H|^2
// (scikit-learn's 'cd' solver without regularisation or shuffling): every column of W in
// turn, then every row of H, each the exact non-negative minimiser given the others.
// Uses only X H^T and H H^T (for W) and X^T W and W^T W (for H), accumulated in the
// same pass. Returns the loss 0.5 |X - W_out H_out|^2 over the included entries.
// sweeps > 1 repeats the coordinate-descent sweep over each row of W (given H) and over
// each column of H (given W) that many times within the one pass over X ("accelerated
// HALS", Gillis & Glineur 2012): each extra sweep costs K^2 per row/column, not a pass
// over X, and never increases the loss. sweeps = 1 is scikit-learn's 'cd' iteration.
template <class TX, class T>
double hals_update(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                   bool update_H, T* W_out, T* H_out, int sweeps = 1);
// hals_update's pass without the H sweep, for callers that reduce over several blocks of
// pixels (Dask chunks): W_out gets the maps swept `sweeps` times given H, and
//   WtX(k, c) = sum_i W_new(i, k) x_ic  (K x C, row-major, float64)
//   WtW(k, l) = sum_i W_new(i, k) W_new(i, l)  (K x K, float64)
// over the included pixels (WtX: all channels). Returns sum x_ic^2 over the included
// entries. Summed over blocks, these are exactly what hals_update's H sweep uses.
template <class TX, class T>
double hals_update_stats(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                         Masks masks, int sweeps, T* W_out, double* WtX, double* WtW);
template <class TX, class TI, class T>
double hals_update_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                       bool update_H, T* W_out, T* H_out, int sweeps = 1);

// Per-pixel Poisson deviance of the reconstruction W H over the included channels,
//   out[i] = 2 sum_c [ x log(x / wh) - x + wh ]      (x log x := 0 at x = 0),
// with wh floored at kEpsilon where x > 0. out has N entries. Half the sum over the
// included pixels is the KL divergence.
template <class TX, class T>
void poisson_deviance(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                      Masks masks, double* out);
template <class TX, class TI, class T>
void poisson_deviance_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                          Masks masks, double* out);

}  // namespace matchar::spectral
