#include "matchar/imaging/simulate.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../parallel.hpp"
#include "random.hpp"

namespace matchar::imaging {

namespace {

using detail::shot_noise;

const char* const kParamNames[kHaadfParams] = {
    "a1x",      "a1y",        "a2x",         "a2y",           "origin_x",
    "origin_y", "pixel_size", "probe_sigma", "thermal_sigma", "background",
    "dose",     "read_noise", "jitter",      "drift_x",       "drift_y"};

void check_params(const double* p, index_t n) {
  const std::string where = "params[" + std::to_string(n) + "]";
  for (int k = 0; k < kHaadfParams; ++k)
    if (!std::isfinite(p[k]))
      throw InvalidArgument(where + "." + kParamNames[k] + " must be finite");
  if (!(p[kPixelSize] > 0.0)) throw InvalidArgument(where + ".pixel_size must be > 0");
  if (!(p[kProbeSigma] > 0.0)) throw InvalidArgument(where + ".probe_sigma must be > 0");
  for (int k : {int(kThermalSigma), int(kBackground), int(kReadNoise), int(kJitter)})
    if (p[k] < 0.0) throw InvalidArgument(where + "." + kParamNames[k] + " must be >= 0");
  const double det = p[kA1x] * p[kA2y] - p[kA1y] * p[kA2x];
  const double n1 = std::hypot(p[kA1x], p[kA1y]), n2 = std::hypot(p[kA2x], p[kA2y]);
  if (!(std::abs(det) > 1e-9 * n1 * n2) || !(n1 > 0.0) || !(n2 > 0.0))
    throw InvalidArgument(where + ": lattice vectors a1, a2 must be non-zero and not collinear");
}

template <class T>
void render_one(const double* col, index_t n_col, const double* p, index_t rows, index_t cols,
                std::uint64_t seed, double* img, std::vector<double>& sx, std::vector<double>& sy,
                T* out, matchar::detail::ParallelGuard& guard) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double ps = p[kPixelSize];
  const double ts = p[kThermalSigma];
  const double s2 = p[kProbeSigma] * p[kProbeSigma] + ts * ts;
  const double s = std::sqrt(s2);
  const double cut = 5.0 * s;
  const double inv2s2 = 1.0 / (2.0 * s2);
  const double norm = 1.0 / (2.0 * M_PI * s2);
  const double q = std::exp(-2.0 * ps * ps * inv2s2);
  // Per-line probe offsets in specimen coordinates.
  for (index_t r = 0; r < rows; ++r) {
    const double j = p[kJitter] > 0.0 ? p[kJitter] * normal(rng) : 0.0;
    sx[r] = j + static_cast<double>(r) * p[kDriftX];
    sy[r] = static_cast<double>(r) * (ps + p[kDriftY]);
  }
  double xmin = sx[0], xmax = sx[0], ymin = sy[0], ymax = sy[0];
  for (index_t r = 0; r < rows; ++r) {
    xmin = std::min(xmin, sx[r]);
    xmax = std::max(xmax, sx[r]);
    ymin = std::min(ymin, sy[r]);
    ymax = std::max(ymax, sy[r]);
  }
  xmax += static_cast<double>(cols - 1) * ps;
  // Lattice index range covering the (margin-extended) scanned region.
  const double margin = cut + 4.0 * ts + 1e-9;
  const double a1x = p[kA1x], a1y = p[kA1y], a2x = p[kA2x], a2y = p[kA2y];
  const double det = a1x * a2y - a1y * a2x;
  double imin = 1e300, imax = -1e300, jmin = 1e300, jmax = -1e300;
  for (double cx : {xmin - margin, xmax + margin})
    for (double cy : {ymin - margin, ymax + margin}) {
      const double dx = cx - p[kOriginX], dy = cy - p[kOriginY];
      const double fi = (dx * a2y - dy * a2x) / det;
      const double fj = (a1x * dy - a1y * dx) / det;
      imin = std::min(imin, fi);
      imax = std::max(imax, fi);
      jmin = std::min(jmin, fj);
      jmax = std::max(jmax, fj);
    }
  const double n_cells = (std::floor(imax) - std::floor(imin) + 3.0) *
                         (std::floor(jmax) - std::floor(jmin) + 3.0) * static_cast<double>(n_col);
  if (!(n_cells <= 1e7))
    throw InvalidArgument("the lattice is too fine for the image: more than 1e7 columns");
  const index_t i0 = static_cast<index_t>(std::floor(imin)) - 1;
  const index_t i1 = static_cast<index_t>(std::floor(imax)) + 1;
  const index_t j0 = static_cast<index_t>(std::floor(jmin)) - 1;
  const index_t j1 = static_cast<index_t>(std::floor(jmax)) + 1;
  const index_t npx = rows * cols;
  // a large frame is over a GB: clear it in pieces between Ctrl-C polls
  for (index_t q0 = 0; q0 < npx; q0 += 1 << 20) {
    guard.poll();
    if (guard.stopped()) return;
    std::fill(img + q0, img + std::min(npx, q0 + (index_t{1} << 20)), 0.0);
  }
  const double tc = 0.5 * ts;
  for (index_t i = i0; i <= i1; ++i) {
    // one image can take seconds: let Ctrl-C (or another thread's error) end it early
    guard.poll();
    if (guard.stopped()) return;
    for (index_t j = j0; j <= j1; ++j)
      for (index_t k = 0; k < n_col; ++k) {
        const double fx = static_cast<double>(i) + col[3 * k];
        const double fy = static_cast<double>(j) + col[3 * k + 1];
        const double w = col[3 * k + 2] * norm;
        double px = p[kOriginX] + fx * a1x + fy * a2x;
        double py = p[kOriginY] + fx * a1y + fy * a2y;
        if (tc > 0.0) {
          px += tc * normal(rng);
          py += tc * normal(rng);
        }
        if (w == 0.0 || px < xmin - cut || px > xmax + cut || py < ymin - cut || py > ymax + cut)
          continue;
        for (index_t r = 0; r < rows; ++r) {
          const double dy = sy[r] - py;
          if (std::abs(dy) > cut) continue;
          const double gy = w * std::exp(-dy * dy * inv2s2);
          // Pixels c with |c * ps + sx[r] - px| <= cut.
          const double c_lo = std::ceil((px - cut - sx[r]) / ps);
          const double c_hi = std::floor((px + cut - sx[r]) / ps);
          const index_t c0 = static_cast<index_t>(std::max(0.0, c_lo));
          const index_t c1 = static_cast<index_t>(std::min(static_cast<double>(cols - 1), c_hi));
          double* row = img + r * cols;
          if (c1 < c0) continue;
          // Gaussian recurrence along the row: g(x + h) = g(x) exp(-(2 x h + h^2) k),
          // the ratio itself advancing by exp(-2 h^2 k): three exp() per row segment.
          const double dx0 = static_cast<double>(c0) * ps + sx[r] - px;
          double g = gy * std::exp(-dx0 * dx0 * inv2s2);
          double ratio = std::exp(-(2.0 * dx0 * ps + ps * ps) * inv2s2);
          for (index_t c = c0; c <= c1; ++c) {
            row[c] += g;
            g *= ratio;
            ratio *= q;
          }
        }
      }
  }
  double sum = 0.0;
  for (index_t q = 0; q < npx; ++q) {
    if (q % (1 << 20) == 0) guard.poll();
    sum += img[q];
  }
  const double m = sum / static_cast<double>(npx);
  const double b = p[kBackground];
  const double scale = m > 0.0 ? 1.0 / ((1.0 + b) * m) : 0.0;
  const double offset = m > 0.0 ? b * m : 0.0;
  const double dose = p[kDose];
  const double rn = p[kReadNoise];
  for (index_t q = 0; q < npx; ++q) {
    if (q % 65536 == 0) {  // shot noise on a large frame takes seconds
      guard.poll();
      if (guard.stopped()) return;
    }
    double v = (img[q] + offset) * scale;
    if (dose > 0.0) {
      v = shot_noise(std::max(0.0, dose * v), rng, normal) / dose;
    }
    if (rn > 0.0) v += rn * normal(rng);
    out[q] = static_cast<T>(v);
  }
}

}  // namespace

template <class T>
void render_haadf(const double* columns, const std::int64_t* column_offsets, index_t n_motifs,
                  const std::int64_t* motif_index, const double* params, index_t n_images,
                  index_t rows, index_t cols, std::uint64_t seed, T* out) {
  detail::check_batch(rows, cols, n_motifs, n_images, "n_images");
  if (column_offsets[0] != 0) throw InvalidArgument("column_offsets[0] must be 0");
  for (index_t m = 0; m < n_motifs; ++m)
    if (column_offsets[m + 1] < column_offsets[m])
      throw InvalidArgument("column_offsets must be non-decreasing");
  for (std::int64_t k = 0; k < column_offsets[n_motifs]; ++k) {
    for (int e = 0; e < 3; ++e)
      if (!std::isfinite(columns[3 * k + e]))
        throw InvalidArgument("columns must be finite (row " + std::to_string(k) + ")");
    if (columns[3 * k + 2] < 0.0)
      throw InvalidArgument("column weights must be >= 0 (row " + std::to_string(k) + ")");
  }
  for (index_t n = 0; n < n_images; ++n) {
    detail::check_motif_index(motif_index, n, n_motifs);
    check_params(params + n * kHaadfParams, n);
  }
  if (n_images == 0) return;
  check_allocation(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols),
                   sizeof(double) * static_cast<std::size_t>(num_threads()), "render_haadf buffer");

  struct Buffers {
    std::unique_ptr<double[]> img;  // not value-initialised: render_one clears it, polling
    std::vector<double> sx, sy;
  };
  matchar::detail::ParallelGuard guard;
  matchar::detail::parallel_for(
      guard, n_images, num_threads(), matchar::detail::Schedule::Dynamic, 1,
      [&] {
        return Buffers{std::unique_ptr<double[]>(new double[static_cast<std::size_t>(rows * cols)]),
                       std::vector<double>(static_cast<std::size_t>(rows)),
                       std::vector<double>(static_cast<std::size_t>(rows))};
      },
      [&](index_t n, Buffers& b) {
        const std::int64_t m = motif_index[n];
        const double* col = columns + 3 * column_offsets[m];
        const index_t n_col = static_cast<index_t>(column_offsets[m + 1] - column_offsets[m]);
        render_one<T>(col, n_col, params + n * kHaadfParams, rows, cols, detail::item_seed(seed, n),
                      b.img.get(), b.sx, b.sy, out + n * rows * cols, guard);
      });
  guard.finish();
}

template void render_haadf<float>(const double*, const std::int64_t*, index_t, const std::int64_t*,
                                  const double*, index_t, index_t, index_t, std::uint64_t, float*);
template void render_haadf<double>(const double*, const std::int64_t*, index_t, const std::int64_t*,
                                   const double*, index_t, index_t, index_t, std::uint64_t,
                                   double*);

}  // namespace matchar::imaging
