// Incoherent (HAADF-STEM) image rendering of projected atomic columns: the fast part of
// matchar.imaging.simulate_haadf and of the crystal-classifier training data generator.
// The crystallography (which columns, where, how heavy) is worked out by the caller.
#pragma once

#include <cstdint>

#include "matchar/common.hpp"

namespace matchar::imaging {

// Number of doubles per image in the `params` table of render_haadf.
constexpr index_t kHaadfParams = 15;

// Indices into one row of `params` (all lengths in Å).
enum HaadfParam : int {
  kA1x = 0,           // first in-plane lattice vector, x (along columns of the image)
  kA1y = 1,           // first in-plane lattice vector, y (along rows)
  kA2x = 2,           // second in-plane lattice vector, x
  kA2y = 3,           // second in-plane lattice vector, y
  kOriginX = 4,       // position of lattice point (0, 0) in specimen coordinates, x
  kOriginY = 5,       // ... y
  kPixelSize = 6,     // scan step (Å per pixel), > 0
  kProbeSigma = 7,    // Gaussian probe standard deviation, > 0
  kThermalSigma = 8,  // RMS thermal displacement, >= 0 (broadens columns, jitters centroids)
  kBackground = 9,    // constant background as a fraction of the mean column signal, >= 0
  kDose = 10,         // electrons per pixel at the mean intensity; <= 0: no shot noise
  kReadNoise = 11,    // Gaussian read noise, standard deviation in units of the mean, >= 0
  kJitter = 12,       // scan-line jitter: standard deviation of a per-line x shift, >= 0
  kDriftX = 13,       // linear drift: x shift added per scan line
  kDriftY = 14,       // linear drift: y shift added per scan line (stretches the y axis)
};

// Renders n_images HAADF images of size rows x cols.
//
// Motif m (0 <= m < n_motifs) is the set of columns columns[column_offsets[m] ..
// column_offsets[m + 1]), each row of `columns` being (fx, fy, weight): a column at
// fractional position (fx, fy) of the 2-D cell spanned by a1, a2, with integrated
// intensity `weight` (>= 0; e.g. atoms per Å times Z^1.7). Image n uses motif
// motif_index[n] and params[n * kHaadfParams ...].
//
// Pixel (r, c) is the probe at specimen position
//   x = c * pixel_size + jitter_r + r * drift_x,   y = r * pixel_size + r * drift_y
// with jitter_r ~ N(0, jitter^2) drawn per scan line. Each column at lattice position
//   p = origin + (i + fx) a1 + (j + fy) a2 + d,   d ~ N(0, (thermal_sigma / 2)^2 I)
// (the centroid jitter of a thin column of ~4 atoms) contributes
//   weight / (2 pi s^2) * exp(-|x - p|^2 / (2 s^2)),   s^2 = probe_sigma^2 + thermal_sigma^2,
// truncated at |x - p| > 5 s. The clean image I is then put on a mean-1 scale with a
// background: J = (I + b m) / ((1 + b) m), m = mean(I) (J = 0 when m = 0); with dose > 0,
// J <- Poisson(dose * J) / dose (for a mean dose * J >= 64 drawn as round(N(mean, mean)),
// clipped at 0: the normal approximation, skewness < 0.125); then J += read_noise * N(0, 1) per
// pixel.
//
// Random numbers: image n uses its own generator seeded from (seed, n), so a batch is
// reproducible for any thread count and image n does not depend on the other images.
// With thermal_sigma = jitter = dose = read_noise = 0 the output is deterministic.
//
// out: n_images x rows x cols, row-major contiguous, written in full.
// Threads: OpenMP over images; Ctrl-C polled between images (throws Interrupted).
// Throws InvalidArgument for rows/cols < 1, n_motifs < 1, bad offsets, a motif index out
// of range, a non-finite parameter, pixel_size <= 0, probe_sigma <= 0, a negative
// thermal_sigma/background/read_noise/jitter/weight, collinear a1, a2, or a lattice so
// fine that one image would hold more than 10^7 columns.
template <class T>
void render_haadf(const double* columns, const std::int64_t* column_offsets, index_t n_motifs,
                  const std::int64_t* motif_index, const double* params, index_t n_images,
                  index_t rows, index_t cols, std::uint64_t seed, T* out);

}  // namespace matchar::imaging
