#include "matchar/imaging/cbed.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <random>
#include <string>
#include <vector>

#include "../parallel.hpp"
#include "random.hpp"

namespace matchar::imaging {

namespace {

constexpr double kBohr = 0.529177210903;  // Å

const char* const kCbedNames[kCbedParams] = {
    "lattice_constant", "rotation", "pixel_size", "center_x",      "center_y", "disk_radius",
    "wavelength",       "gamma",    "thickness",  "thermal_sigma", "tilt_x",   "tilt_y",
    "background",       "dose",     "read_noise", "g_max"};

void check_cbed_params(const double* p, index_t n) {
  const std::string where = "params[" + std::to_string(n) + "].";
  for (int k = 0; k < kCbedParams; ++k)
    if (!std::isfinite(p[k])) throw InvalidArgument(where + kCbedNames[k] + " must be finite");
  for (int k : {int(kCbedLattice), int(kCbedPixel), int(kCbedRadius), int(kCbedWavelength),
                int(kCbedThickness), int(kCbedGMax)})
    if (!(p[k] > 0.0)) throw InvalidArgument(where + kCbedNames[k] + " must be > 0");
  if (!(p[kCbedGamma] >= 1.0)) throw InvalidArgument(where + "gamma must be >= 1");
  for (int k : {int(kCbedThermal), int(kCbedBackground), int(kCbedReadNoise)})
    if (p[k] < 0.0) throw InvalidArgument(where + kCbedNames[k] + " must be >= 0");
}

// Kinematic intensity factor sin^2(pi T s) / (pi s)^2 (-> T^2 as s -> 0).
inline double thickness_factor(double t, double s) {
  const double x = M_PI * s;
  if (std::abs(x * t) < 1e-6) return t * t;
  const double sn = std::sin(x * t);
  return sn * sn / (x * x);
}

struct Reflection {
  double gx, gy, g2;  // rotated reciprocal vector (1/Å) and |g|^2
  double amp2;        // (lambda |F_g| / V)^2
  bool visible;       // its disk can touch the pattern
};

template <class T>
void render_one(const double* refl, index_t n_refl, const double* atoms, index_t n_atoms,
                double volume, const double* p, index_t rows, index_t cols, std::uint64_t seed,
                std::vector<Reflection>& list, std::vector<double>& img, T* out,
                matchar::detail::ParallelGuard& guard) {
  const double a = p[kCbedLattice];
  const double th = p[kCbedRotation] * M_PI / 180.0;
  const double ct = std::cos(th), st = std::sin(th);
  const double ps = p[kCbedPixel], cx = p[kCbedCenterX], cy = p[kCbedCenterY];
  const double radius = p[kCbedRadius], lam = p[kCbedWavelength];
  const double thick = p[kCbedThickness], sig = p[kCbedThermal];
  const double tx = p[kCbedTiltX], ty = p[kCbedTiltY];
  const double vol = volume * a * a * a;
  const double rpx = radius / ps;  // disk radius in pixels
  // Structure factors; which disks can touch the pattern (all deplete the direct beam).
  const double kx0 = -cx * ps, kx1 = (static_cast<double>(cols) - 1.0 - cx) * ps;
  const double ky0 = -cy * ps, ky1 = (static_cast<double>(rows) - 1.0 - cy) * ps;
  const double reach = radius + ps;
  list.clear();
  for (index_t r = 0; r < n_refl; ++r) {
    const double* q = refl + 5 * r;
    const double gx = (ct * q[3] - st * q[4]) / a, gy = (st * q[3] + ct * q[4]) / a;
    const bool visible =
        !(gx < kx0 - reach || gx > kx1 + reach || gy < ky0 - reach || gy > ky1 + reach);
    const double g2 = gx * gx + gy * gy;
    const double g = std::sqrt(g2);
    if (g > p[kCbedGMax]) continue;
    std::complex<double> f(0.0, 0.0);
    double f_abs = 0.0;
    for (index_t j = 0; j < n_atoms; ++j) {
      const double* at = atoms + 4 * j;
      const double phase = 2.0 * M_PI * (q[0] * at[0] + q[1] * at[1] + q[2] * at[2]);
      const double fj = moliere_scattering_factor(at[3], g);
      f += fj * std::polar(1.0, phase);
      f_abs += fj;
    }
    // extinct (kinematically forbidden) reflection: the sum cancels to rounding error
    if (!(std::abs(f) > 1e-9 * f_abs)) continue;
    const double fa = std::abs(f) * p[kCbedGamma] * std::exp(-2.0 * M_PI * M_PI * sig * sig * g2);
    const double amp = lam * fa / vol;
    list.push_back({gx, gy, g2, amp * amp, visible});
  }
  // Excitation error of reflection h for in-plane incident wavevector K.
  auto intensity = [&](const Reflection& h, double kx, double ky) {
    const double s = -0.5 * lam * (2.0 * (kx * h.gx + ky * h.gy) + h.g2);
    return h.amp2 * thickness_factor(thick, s);
  };
  std::fill(img.begin(), img.end(), 0.0);
  // Draws disk (centre (gx, gy) in 1/Å); value(kx, ky) gets the incident K of the pixel.
  auto disk = [&](double gx, double gy, auto&& value) {
    const double pcx = cx + gx / ps, pcy = cy + gy / ps;
    const index_t r0 = std::max<index_t>(0, static_cast<index_t>(std::floor(pcy - rpx - 1.0)));
    const index_t r1 =
        std::min<index_t>(rows - 1, static_cast<index_t>(std::ceil(pcy + rpx + 1.0)));
    const index_t c0 = std::max<index_t>(0, static_cast<index_t>(std::floor(pcx - rpx - 1.0)));
    const index_t c1 =
        std::min<index_t>(cols - 1, static_cast<index_t>(std::ceil(pcx + rpx + 1.0)));
    for (index_t r = r0; r <= r1; ++r) {
      // a large frame takes seconds: let Ctrl-C (or another thread's error) end it early
      guard.poll();
      if (guard.stopped()) return;
      for (index_t c = c0; c <= c1; ++c) {
        const double dx = static_cast<double>(c) - pcx, dy = static_cast<double>(r) - pcy;
        const double cover = std::clamp(rpx - std::hypot(dx, dy) + 0.5, 0.0, 1.0);
        if (cover <= 0.0) continue;
        // incident wavevector: pixel position minus disk centre, plus the crystal tilt
        img[r * cols + c] += cover * value(dx * ps + tx, dy * ps + ty);
      }
    }
  };
  for (const Reflection& h : list)
    if (h.visible) disk(h.gx, h.gy, [&](double kx, double ky) { return intensity(h, kx, ky); });
  disk(0.0, 0.0, [&](double kx, double ky) {
    double sum = 0.0;
    for (const Reflection& h : list) sum += intensity(h, kx, ky);
    return std::max(0.0, 1.0 - sum);
  });
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double bg = p[kCbedBackground], dose = p[kCbedDose], rn = p[kCbedReadNoise];
  const index_t npx = rows * cols;
  for (index_t q = 0; q < npx; ++q) {
    if (q % 65536 == 0) {
      guard.poll();
      if (guard.stopped()) return;
    }
    double v = img[q] + bg;
    if (dose > 0.0) v = detail::shot_noise(std::max(0.0, dose * v), rng, normal) / dose;
    if (rn > 0.0) v += rn * normal(rng);
    out[q] = static_cast<T>(v);
  }
}

}  // namespace

double moliere_scattering_factor(double z, double g) {
  static constexpr double alpha[3] = {0.35, 0.55, 0.10};
  static constexpr double beta[3] = {0.3, 1.2, 6.0};
  const double a_tf = 0.88534 * kBohr / std::cbrt(z);
  const double q = 2.0 * M_PI * g;
  double f = 0.0;
  for (int i = 0; i < 3; ++i) {
    const double kappa = beta[i] / a_tf;
    f += alpha[i] / (q * q + kappa * kappa);
  }
  return 2.0 * z / kBohr * f;
}

template <class T>
void render_cbed(const double* reflections, const std::int64_t* refl_offsets, const double* atoms,
                 const std::int64_t* atom_offsets, const double* volumes, index_t n_motifs,
                 const std::int64_t* motif_index, const double* params, index_t n_patterns,
                 index_t rows, index_t cols, std::uint64_t seed, T* out) {
  detail::check_batch(rows, cols, n_motifs, n_patterns, "n_patterns");
  for (const std::int64_t* off : {refl_offsets, atom_offsets}) {
    if (off[0] != 0) throw InvalidArgument("offsets must start at 0");
    for (index_t m = 0; m < n_motifs; ++m)
      if (off[m + 1] < off[m]) throw InvalidArgument("offsets must be non-decreasing");
  }
  for (std::int64_t k = 0; k < 5 * refl_offsets[n_motifs]; ++k)
    if (!std::isfinite(reflections[k])) throw InvalidArgument("reflections must be finite");
  for (std::int64_t k = 0; k < atom_offsets[n_motifs]; ++k) {
    for (int e = 0; e < 4; ++e)
      if (!std::isfinite(atoms[4 * k + e])) throw InvalidArgument("atoms must be finite");
    if (!(atoms[4 * k + 3] >= 1.0))
      throw InvalidArgument("atomic numbers must be >= 1 (atom " + std::to_string(k) + ")");
  }
  for (index_t m = 0; m < n_motifs; ++m)
    if (!(std::isfinite(volumes[m]) && volumes[m] > 0.0))
      throw InvalidArgument("volumes must be finite and > 0 (motif " + std::to_string(m) + ")");
  for (index_t n = 0; n < n_patterns; ++n) {
    detail::check_motif_index(motif_index, n, n_motifs);
    check_cbed_params(params + n * kCbedParams, n);
  }
  if (n_patterns == 0) return;
  check_allocation(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols),
                   sizeof(double) * static_cast<std::size_t>(num_threads()), "render_cbed buffer");

  struct Buffers {
    std::vector<double> img;
    std::vector<Reflection> list;
  };
  // no more threads than patterns: a lone pattern does not wait on an idle team
  matchar::detail::ParallelGuard guard;
  matchar::detail::parallel_for(
      guard, n_patterns, num_threads(), matchar::detail::Schedule::Dynamic, 1,
      [&] { return Buffers{std::vector<double>(static_cast<std::size_t>(rows * cols)), {}}; },
      [&](index_t n, Buffers& b) {
        const std::int64_t m = motif_index[n];
        render_one<T>(reflections + 5 * refl_offsets[m],
                      static_cast<index_t>(refl_offsets[m + 1] - refl_offsets[m]),
                      atoms + 4 * atom_offsets[m],
                      static_cast<index_t>(atom_offsets[m + 1] - atom_offsets[m]), volumes[m],
                      params + n * kCbedParams, rows, cols, detail::item_seed(seed, n), b.list,
                      b.img, out + n * rows * cols, guard);
      });
  guard.finish();
}

template void render_cbed<float>(const double*, const std::int64_t*, const double*,
                                 const std::int64_t*, const double*, index_t, const std::int64_t*,
                                 const double*, index_t, index_t, index_t, std::uint64_t, float*);
template void render_cbed<double>(const double*, const std::int64_t*, const double*,
                                  const std::int64_t*, const double*, index_t, const std::int64_t*,
                                  const double*, index_t, index_t, index_t, std::uint64_t, double*);

}  // namespace matchar::imaging
