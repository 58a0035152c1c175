// Rotation and mirror descriptors: the point-symmetry complement of the local
// correlation map, which sees only translations (Patterson symmetry).
#pragma once

#include "matchar/common.hpp"

namespace matchar::imaging {

// Number of output rows (or columns) of symmetry_map for an image side of `extent`
// pixels: ceil((extent - 2 (patch + 1)) / stride), or 0 when too small.
index_t symmetry_map_extent(index_t extent, int patch, int stride);

// Point-symmetry map.
//
//   out[i, j, t] = Pearson correlation, over the offsets o of the disc |o| <= patch,
//                  between f(p + o) and f(p + M_t o),  p = (m + i stride, m + j stride),
//                  m = patch + 1
//
// f is the image, read at non-integer positions by bilinear interpolation. M_t are
// 2 x 2 matrices acting on offsets written (dy, dx), row-major in `transforms`
// (4 n_transforms doubles); each must map every disc offset into the disc, per
// component (|(M_t o)_y|, |(M_t o)_x| <= patch), which rotations and reflections about p
// do. out: (H', W', n_transforms) row-major contiguous float32, written in full;
// H', W' = symmetry_map_extent(...). No padding: only pixels whose whole disc and its
// images lie inside the image are covered.
//
// The image is centred on its mean and copied to double; sums are double. A flat disc
// (variance below 1e-12 times the image variance, for either side) gives 0, not NaN;
// values are clamped to [-1, 1].
//
// Cost: O(H' W' n_transforms patch^2): 4 taps per offset and transform. Threads:
// OpenMP over output rows; Ctrl-C polled after every row (throws Interrupted).
// Throws InvalidArgument for patch < 1, stride < 1, n_transforms < 1, a matrix entry
// beyond +-1 or not finite, a matrix mapping the disc outside itself, a too-small
// image, NaN/inf pixels or a constant image.
template <class T>
void symmetry_map(ConstMatrixView<T> image, int patch, const double* transforms,
                  index_t n_transforms, int stride, float* out);

}  // namespace matchar::imaging
