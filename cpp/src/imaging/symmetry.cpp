#include "matchar/imaging/symmetry.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../parallel.hpp"

namespace matchar::imaging {

index_t symmetry_map_extent(index_t extent, int patch, int stride) {
  const index_t inner = extent - 2 * (static_cast<index_t>(patch) + 1);
  if (inner <= 0 || stride < 1) return 0;
  return (inner + stride - 1) / stride;
}

template <class T>
void symmetry_map(ConstMatrixView<T> image, int patch, const double* transforms,
                  index_t n_transforms, int stride, float* out) {
  if (patch < 1) throw InvalidArgument("patch must be >= 1, got " + std::to_string(patch));
  if (stride < 1) throw InvalidArgument("stride must be >= 1, got " + std::to_string(stride));
  if (n_transforms < 1)
    throw InvalidArgument("n_transforms must be >= 1, got " + std::to_string(n_transforms));
  if (transforms == nullptr) throw InvalidArgument("transforms must not be null");
  if (out == nullptr) throw InvalidArgument("out must not be null");
  for (index_t e = 0; e < 4 * n_transforms; ++e)
    if (!std::isfinite(transforms[e]) || std::abs(transforms[e]) > 1.0 + 1e-12)
      throw InvalidArgument("transforms[" + std::to_string(e / 4) +
                            "] must have finite entries within [-1, 1]");
  const index_t H = image.rows, W = image.cols;
  const index_t Ho = symmetry_map_extent(H, patch, stride);
  const index_t Wo = symmetry_map_extent(W, patch, stride);
  if (Ho == 0 || Wo == 0)
    throw InvalidArgument("image of shape (" + std::to_string(H) + ", " + std::to_string(W) +
                          ") is too small: both sides must exceed 2 * (patch + 1) = " +
                          std::to_string(2 * (patch + 1)));
  require_finite(image, "image");

  check_allocation(static_cast<std::size_t>(H) * static_cast<std::size_t>(W), sizeof(double),
                   "symmetry_map centred image");
  std::vector<double> c(static_cast<std::size_t>(H * W));
  double total = 0.0;
  for (index_t y = 0; y < H; ++y)
    for (index_t x = 0; x < W; ++x) total += (c[y * W + x] = static_cast<double>(image(y, x)));
  const double mean = total / static_cast<double>(H * W);
  double sq = 0.0;
  for (auto& v : c) {
    v -= mean;
    sq += v * v;
  }
  if (!(sq > 0.0))
    throw InvalidArgument("image is constant: the correlation of a flat image is undefined");

  // Disc offsets and, per transform, the four bilinear taps of the transformed offset,
  // as linear offsets into c (valid for every covered pixel) and weights.
  std::vector<index_t> base;
  for (index_t dy = -patch; dy <= patch; ++dy)
    for (index_t dx = -patch; dx <= patch; ++dx)
      if (dy * dy + dx * dx <= static_cast<index_t>(patch) * patch) base.push_back(dy * W + dx);
  const index_t n = static_cast<index_t>(base.size());
  const double flat = 1e-12 * (sq / static_cast<double>(H * W)) * static_cast<double>(n);
  std::vector<index_t> tap(static_cast<std::size_t>(n_transforms * n));
  std::vector<double> wts(static_cast<std::size_t>(n_transforms * n * 4));
  for (index_t t = 0; t < n_transforms; ++t) {
    const double* M = transforms + 4 * t;
    index_t k = 0;
    for (index_t dy = -patch; dy <= patch; ++dy)
      for (index_t dx = -patch; dx <= patch; ++dx) {
        if (dy * dy + dx * dx > static_cast<index_t>(patch) * patch) continue;
        const double ty = M[0] * dy + M[1] * dx, tx = M[2] * dy + M[3] * dx;
        // Round near-integers so exact symmetries (2-, 4-fold, axis mirrors) stay exact.
        const double ry = std::abs(ty - std::round(ty)) < 1e-9 ? std::round(ty) : ty;
        const double rx = std::abs(tx - std::round(tx)) < 1e-9 ? std::round(tx) : tx;
        if (std::abs(ry) > patch + 1e-9 || std::abs(rx) > patch + 1e-9)
          throw InvalidArgument("transforms[" + std::to_string(t) +
                                "] maps the disc outside itself; use rotations and reflections");
        const double fy = std::floor(ry), fx = std::floor(rx);
        const double wy = ry - fy, wx = rx - fx;
        tap[t * n + k] = static_cast<index_t>(fy) * W + static_cast<index_t>(fx);
        double* w = wts.data() + (t * n + k) * 4;
        w[0] = (1 - wy) * (1 - wx);
        w[1] = (1 - wy) * wx;
        w[2] = wy * (1 - wx);
        w[3] = wy * wx;
        ++k;
      }
  }

  const index_t m = static_cast<index_t>(patch) + 1;
  matchar::detail::parallel_for(
      Ho, num_threads(), matchar::detail::Schedule::Dynamic, 1,
      [&] { return std::vector<double>(static_cast<std::size_t>(n)); },
      [&](index_t i, std::vector<double>& a) {
        const index_t yc = m + i * stride;
        for (index_t j = 0; j < Wo; ++j) {
          const double* p = c.data() + yc * W + m + j * stride;
          double sa = 0.0, saa = 0.0;
          for (index_t k = 0; k < n; ++k) {
            const double v = p[base[k]];
            a[k] = v;
            sa += v;
            saa += v * v;
          }
          const double va = saa - sa * sa / static_cast<double>(n);
          float* o = out + (i * Wo + j) * n_transforms;
          for (index_t t = 0; t < n_transforms; ++t) {
            const index_t* tp = tap.data() + t * n;
            const double* w = wts.data() + t * n * 4;
            double sb = 0.0, sbb = 0.0, sab = 0.0;
            for (index_t k = 0; k < n; ++k) {
              const double* q = p + tp[k];
              const double b = w[4 * k] * q[0] + w[4 * k + 1] * q[1] + w[4 * k + 2] * q[W] +
                               w[4 * k + 3] * q[W + 1];
              sb += b;
              sbb += b * b;
              sab += a[k] * b;
            }
            const double vb = sbb - sb * sb / static_cast<double>(n);
            double r = 0.0;
            if (va > flat && vb > flat)
              r = (sab - sa * sb / static_cast<double>(n)) / std::sqrt(va * vb);
            o[t] = static_cast<float>(std::min(1.0, std::max(-1.0, r)));
          }
        }
      });
}

template void symmetry_map<float>(ConstMatrixView<float>, int, const double*, index_t, int, float*);
template void symmetry_map<double>(ConstMatrixView<double>, int, const double*, index_t, int,
                                   float*);

}  // namespace matchar::imaging
