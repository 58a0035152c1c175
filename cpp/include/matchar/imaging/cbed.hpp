// Kinematic convergent-beam electron diffraction (CBED) patterns of crystals at a zone
// axis: the fast part of matchar.imaging.simulate_cbed and of the CBED classifier's
// training data. Which reflections and atoms (the crystallography) is worked out by the
// caller; this kernel computes structure factors and draws the disks.
#pragma once

#include <cstdint>

#include "matchar/common.hpp"

namespace matchar::imaging {

// Number of doubles per pattern in the `params` table of render_cbed.
constexpr index_t kCbedParams = 16;

// Indices into one row of `params`. Reciprocal lengths are in 1/Å (g = 1/d).
enum CbedParam : int {
  kCbedLattice = 0,      // lattice constant a (Å), > 0; reflections and volumes scale with it
  kCbedRotation = 1,     // in-plane rotation of the pattern (degrees, from +x towards +y rows)
  kCbedPixel = 2,        // reciprocal pixel size (1/Å per pixel), > 0
  kCbedCenterX = 3,      // position of the direct beam (pixels, along columns)
  kCbedCenterY = 4,      // ... along rows
  kCbedRadius = 5,       // disk radius alpha / lambda (1/Å), > 0
  kCbedWavelength = 6,   // relativistic electron wavelength lambda (Å), > 0
  kCbedGamma = 7,        // relativistic mass ratio gamma (scales the scattering factors), >= 1
  kCbedThickness = 8,    // specimen thickness T (Å), > 0
  kCbedThermal = 9,      // RMS thermal displacement sigma (Å, one direction), >= 0
  kCbedTiltX = 10,       // crystal tilt off the zone axis as an in-plane wavevector (1/Å), x
  kCbedTiltY = 11,       // ... y
  kCbedBackground = 12,  // constant background (units of the incident intensity), >= 0
  kCbedDose = 13,        // electrons per pixel at intensity 1; <= 0: no shot noise
  kCbedReadNoise = 14,   // Gaussian read noise, standard deviation (intensity units), >= 0
  kCbedGMax = 15,        // reflections with |g| > g_max (1/Å) are ignored, > 0
};

// Kinematic electron scattering factor (Å) of a neutral atom of atomic number Z at
// reciprocal distance g = 2 sin(theta) / lambda (1/Å), non-relativistic (multiply by gamma):
// the first Born approximation for the Thomas-Fermi potential with Moliere's screening
// function, f(g) = (2 Z / a0) sum_i alpha_i / (q^2 + (b_i / a_TF)^2), q = 2 pi g,
// a_TF = 0.88534 a0 Z^(-1/3), (alpha) = (0.35, 0.55, 0.10), (b) = (0.3, 1.2, 6.0).
double moliere_scattering_factor(double z, double g);

// Renders n_patterns CBED patterns of size rows x cols.
//
// Motif m holds the reflections reflections[refl_offsets[m] .. refl_offsets[m + 1]), each a
// row (h, k, l, gx, gy): Miller indices in the conventional cell and the in-plane reciprocal
// vector for a = 1 and rotation 0 (1/a units; the caller lists only reflections of the
// zero-order Laue zone, g . zone axis = 0, without (000)); the atoms
// atoms[atom_offsets[m] .. atom_offsets[m + 1]), each a row (x, y, z, Z) with fractional
// coordinates in the conventional cell; and the conventional cell volume volumes[m] for a = 1.
// Pattern n uses motif motif_index[n] and params[n * kCbedParams ...].
//
// With g = R(rotation) (gx, gy) / a, the structure factor is
//   F_g = gamma sum_j f(Z_j, |g|) exp(-2 pi^2 sigma^2 |g|^2) exp(2 pi i (h x_j + k y_j + l z_j))
// and a beam incident with in-plane wavevector K (relative to the zone axis) gives, in the
// kinematic (single-scattering, two-beam) approximation, diffracted intensity
//   I_g(K) = (lambda |F_g| / V)^2 sin^2(pi T s) / (pi s)^2,
//   s = -(lambda / 2) (2 K . g + |g|^2)                     (excitation error),
// V = a^3 volumes[m]. Pixel (r, c) sits at k = ((c - cx), (r - cy)) * pixel_size; in the disk
// of reflection g (|k - g| <= radius) it sees K = k - g + tilt and collects I_g(K); the direct
// disk holds max(0, 1 - sum_g I_g(K)) (kinematic depletion of the incident beam; the sum
// runs over the reflections given with |g| <= g_max, also those whose disks fall outside the
// pattern). Disk edges
// are antialiased (coverage clamp(R - d + 1/2, 0, 1) in pixels); overlapping disks add
// incoherently. Then the background is added; with dose > 0, J <- Poisson(dose * J) / dose
// (rounded normal approximation above a mean of 64 counts); then J += read_noise * N(0, 1).
//
// Random numbers: pattern n uses its own generator seeded from (seed, n), so a batch is
// reproducible for any thread count. Without dose and read noise the output is deterministic.
//
// out: n_patterns x rows x cols, row-major contiguous, written in full.
// Threads: OpenMP over patterns; Ctrl-C polled between patterns (throws Interrupted).
// Throws InvalidArgument for rows/cols < 1, n_motifs < 1, bad offsets, a motif index out of
// range, non-finite inputs, Z < 1, a volume <= 0, or a parameter out of its range above.
template <class T>
void render_cbed(const double* reflections, const std::int64_t* refl_offsets, const double* atoms,
                 const std::int64_t* atom_offsets, const double* volumes, index_t n_motifs,
                 const std::int64_t* motif_index, const double* params, index_t n_patterns,
                 index_t rows, index_t cols, std::uint64_t seed, T* out);

}  // namespace matchar::imaging
