// Local correlation maps: the translational-periodicity descriptor of atomic-resolution
// STEM images (Wang, Freysoldt, Liebscher and Neugebauer, Microsc. Microanal. 2021).
#pragma once

#include <vector>

#include "matchar/common.hpp"

namespace matchar::imaging {

// The default set of shifts for local_correlation_map, as n_shifts rows (dy, dx),
// row-major in `out` (size 2 * n_shifts):
//
//   candidates: the integer grid of step g inside the square [-window, window]^2,
//     upper half-plane only (dy > 0, or dy == 0 and dx > 0): the correlation for -s at
//     pixel p equals the one for s at p - s, so the other half adds little;
//   g: the largest step whose half-plane grid still holds >= n_shifts points, so the
//     shifts spread over the whole window rather than bunching at the centre;
//   order: the n_shifts shortest candidates, ties broken by the angle atan2(dy, dx)
//     (ascending), so the result is deterministic and the same on every platform.
//
// window >= 1; 1 <= n_shifts <= ((2 window + 1)^2 - 1) / 2. Throws InvalidArgument.
std::vector<int> select_shifts(int window, int n_shifts);

// Number of output rows (or columns) of local_correlation_map for an image side of
// `extent` pixels: ceil((extent - 2 (patch + window)) / stride), or 0 when the image side
// is not larger than 2 (patch + window).
index_t correlation_map_extent(index_t extent, int patch, int window, int stride);

// Local correlation map.
//
//   maps[i, j, k] = Pearson correlation between the (2 patch + 1)^2 neighbourhood of the
//                   image centred at p = (m + i stride, m + j stride), m = patch + window,
//                   and the one centred at p + shifts[k]
//
// image: (H, W), any strides. shifts: n_shifts rows (dy, dx), row-major, each with
// |dy|, |dx| <= window. out: (H', W', n_shifts) row-major contiguous float32, written in
// full, H' = correlation_map_extent(H, ...), W' likewise (border: the output covers only
// the pixels p for which both neighbourhoods lie inside the image for every shift
// within +-window; nothing is padded).
//
// Accuracy: the image is centred on its global mean and copied to double; box sums run
// in double as sliding column sums over the rows of one thread's band plus a running
// sum along each row, so the variance sum(a^2) - sum(a)^2 / n is formed from centred
// values and never from a whole-image integral. A neighbourhood whose variance is below
// 1e-12 times the image variance (flat) has correlation 0 with everything, not NaN.
// Values are clamped to [-1, 1].
//
// Cost: O(H W n_shifts), independent of patch (each shift: one product per pixel added
// to and one removed from a column sum, one running sum per output row). Extra memory:
// the centred double image plus, per thread, n_shifts x W doubles of column sums.
// Threads: OpenMP over bands of output rows; polls the interrupt handler after every
// output row and throws Interrupted when asked to stop.
//
// Throws InvalidArgument for patch < 1, window < 1, stride < 1, n_shifts < 1, a shift
// outside +-window, an image with a side <= 2 (patch + window), NaN/inf pixels or a
// constant image.
template <class T>
void local_correlation_map(ConstMatrixView<T> image, int patch, int window, const int* shifts,
                           index_t n_shifts, int stride, float* out);

}  // namespace matchar::imaging
