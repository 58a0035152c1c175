// Sufficient statistics of one block of pixels for callers that reduce an NMF update
// over several blocks (Dask chunks): the Frobenius (HALS) counterpart of
// kl_update_stats in nmf.hpp.
#pragma once

#include "matchar/common.hpp"
#include "matchar/spectral/nmf.hpp"

namespace matchar::spectral {

// Over the included pixels of the block (masks.pixels; all channels):
//   XtW (C x K, row-major float64) = X^T W,   WtW (K x K, float64) = W^T W,
// and returns sum x^2 over the included entries (pixels and channels). With the H rows
// of a HALS sweep these give the Frobenius loss 0.5 |X - W H|^2 of the block without a
// second pass. Summed over blocks they are the statistics of hals_update's H sweep.
template <class TX, class T>
double frobenius_stats(ConstMatrixView<TX> X, ConstMatrixView<T> W, Masks masks, double* XtW,
                       double* WtW);

}  // namespace matchar::spectral
