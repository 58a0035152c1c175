#include "matchar/atoms/soap.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../parallel.hpp"

namespace matchar::atoms {
namespace {

constexpr double kPi = 3.14159265358979323846;

double shifted_cosine(double r, double cutoff, double width) {
  if (width <= 0.0) return r < cutoff ? 1.0 : 0.0;
  if (r <= cutoff - width) return 1.0;
  if (r >= cutoff) return 0.0;
  return 0.5 * (1.0 + std::cos(kPi * (r - cutoff + width) / width));
}

}  // namespace

namespace {

constexpr int kLegendreSize = (kMaxAngularSupported + 1) * (kMaxAngularSupported + 2) / 2;
inline int legendre_index(int l, int m) { return l * (l + 1) / 2 + m; }

// Recurrence coefficients of the orthonormal associated Legendre functions, computed
// once (thread-safe static initialisation).
struct LegendreCoefficients {
  double a[kLegendreSize], b[kLegendreSize], diag[kMaxAngularSupported + 1],
      sub[kMaxAngularSupported + 1];
  LegendreCoefficients() {
    for (int l = 0; l <= kMaxAngularSupported; ++l) {
      diag[l] = l == 0 ? 0.0 : std::sqrt((2.0 * l + 1.0) / (2.0 * l));
      sub[l] = std::sqrt(2.0 * l + 3.0);
      for (int m = 0; m <= l; ++m) {
        const double ll = l * l, mm = m * m, l1 = (l - 1.0) * (l - 1.0);
        a[legendre_index(l, m)] = l >= m + 2 ? std::sqrt((4.0 * ll - 1.0) / (ll - mm)) : 0.0;
        b[legendre_index(l, m)] = l >= m + 2 ? std::sqrt((l1 - mm) / (4.0 * l1 - 1.0)) : 0.0;
      }
    }
  }
};

const LegendreCoefficients& legendre_coefficients() {
  static const LegendreCoefficients table;
  return table;
}

// The per-centre loops, once per level (soap_kernels.inc).
#define MATCHAR_SOAP_NS level_base
#define MATCHAR_SOAP_ATTR
#include "soap_kernels.inc"
#undef MATCHAR_SOAP_NS
#undef MATCHAR_SOAP_ATTR
#if defined(MATCHAR_CPU_DISPATCH) && !defined(MATCHAR_ARCH_NATIVE)
#define MATCHAR_SOAP_NS level_v3
#define MATCHAR_SOAP_ATTR __attribute__((target("arch=x86-64-v3")))
#include "soap_kernels.inc"
#undef MATCHAR_SOAP_NS
#undef MATCHAR_SOAP_ATTR
#define MATCHAR_SOAP_NS level_v4
#define MATCHAR_SOAP_ATTR __attribute__((target("arch=x86-64-v4")))
#include "soap_kernels.inc"
#undef MATCHAR_SOAP_NS
#undef MATCHAR_SOAP_ATTR
#endif

// Eigen's GEMM for g = A^T A (the baseline copy: Eigen vectorises for the library's own
// flags; the level copies use their plain loops).
void gram_eigen(const double* A, int M, index_t K, double* g) {
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMajor> a(A, M, K);
  Eigen::Map<RowMajor> out(g, K, K);
  out.noalias() = a.transpose() * a;
}

struct SoapLevel {
  void (*harmonics)(int, double, double, double, double*);
  void (*accumulate)(double*, const double*, const double*, double, int, int, index_t, double*);
  void (*gram)(const double*, int, index_t, double*);
  void (*hermite)(const double*, const double*, int, double*);
};

// The copy of the level cpu_level() names (looked up per call: set_cpu_level may change
// it). A build for this host (MATCHAR_ARCH=native) has no use for them: its own flags
// already fit the CPU (and the target copies, with generic tuning, were not faster).
SoapLevel soap_level() {
#if defined(MATCHAR_CPU_DISPATCH) && !defined(MATCHAR_ARCH_NATIVE)
  const std::string level = cpu_level();
  if (level == "avx512")
    return {level_v4::harmonics, level_v4::accumulate, level_v4::gram, level_v4::hermite};
  if (level == "avx2")
    return {level_v3::harmonics, level_v3::accumulate, level_v3::gram, level_v3::hermite};
#endif
  return {level_base::harmonics, level_base::accumulate, gram_eigen, level_base::hermite};
}

}  // namespace

void real_spherical_harmonics(int L, double x, double y, double z, double* out) {
  soap_level().harmonics(L, x, y, z, out);
}

Soap::Soap(const SoapParameters& params, int n_species, std::vector<char> pair_mask)
    : params_(params), n_species_(n_species) {
  if (n_species < 1) throw InvalidArgument("species must hold at least one species");
  if (!(params.smoothing >= 0.0) || params.smoothing > params.cutoff)
    throw InvalidArgument("smoothing must be in [0, cutoff], got " +
                          std::to_string(params.smoothing));
  if (!std::isfinite(params.center_weight)) throw InvalidArgument("center_weight must be finite");
  if (params.scaling_radius != 0.0 &&
      !(std::isfinite(params.scaling_radius) && params.scaling_radius > 0.0 &&
        std::isfinite(params.scaling_rate) && params.scaling_rate > 0.0 &&
        std::isfinite(params.scaling_exponent) && params.scaling_exponent >= 0.0))
    throw InvalidArgument(
        "radial_scaling needs radius > 0, rate > 0 and exponent >= 0, all finite");
  const index_t S = n_species;
  if (!pair_mask.empty() && static_cast<index_t>(pair_mask.size()) != S * S)
    throw InvalidArgument("pair_mask must have n_species^2 entries");
  radial_ = std::make_shared<const GtoRadialIntegral>(params);
  const index_t N = params.n_radial, L = params.max_angular;
  pair_offset_.assign(static_cast<std::size_t>(S * S), -1);
  for (index_t a = 0; a < S; ++a)
    for (index_t b = a; b < S; ++b) {
      if (!pair_mask.empty() && !pair_mask[a * S + b]) continue;
      pair_offset_[a * S + b] = n_features_;
      n_features_ += (L + 1) * (a == b && params.compress ? N * (N + 1) / 2 : N * N);
    }
  if (n_features_ == 0) throw InvalidArgument("pairs selects no neighbour-species pair");
}

index_t Soap::n_features() const { return n_features_; }

index_t Soap::n_coefficients() const {
  const index_t N = params_.n_radial, L = params_.max_angular;
  return (L + 1) * (L + 1) * n_species_ * N;
}

// Computes the expansion of every requested centre (OpenMP over centres, frames'
// neighbour lists built first, in parallel) and hands each to
// sink(row, coefficients, present) with coefficients laid out [lm][species][n] and
// present[a] != 0 when species a has a non-zero density around the centre.
template <class Sink>
void Soap::run(const Frames& f, const index_t* centers, index_t n_centers, Sink&& sink) const {
  if (f.n_frames < 0) throw InvalidArgument("n_frames must be >= 0");
  for (index_t s = 0; s < f.n_frames; ++s)
    if (f.offsets[s + 1] < f.offsets[s]) throw InvalidArgument("frame offsets must not decrease");
  const index_t n_total = f.n_frames > 0 ? f.offsets[f.n_frames] : 0;
  for (index_t k = 0; k < n_total; ++k)
    if (f.species[k] < 0 || f.species[k] >= n_species_)
      throw InvalidArgument("species index " + std::to_string(f.species[k]) + " of atom " +
                            std::to_string(k) + " out of range");
  // Which frames are needed, and check the centres.
  std::vector<char> used(static_cast<std::size_t>(f.n_frames), 0);
  for (index_t c = 0; c < n_centers; ++c) {
    const index_t s = centers[2 * c], a = centers[2 * c + 1];
    if (s < 0 || s >= f.n_frames || a < 0 || a >= f.offsets[s + 1] - f.offsets[s])
      throw InvalidArgument("centers[" + std::to_string(c) + "] = (" + std::to_string(s) + ", " +
                            std::to_string(a) + ") is not an atom of the frames");
    used[s] = 1;
  }
  std::vector<std::unique_ptr<NeighborList>> lists(static_cast<std::size_t>(f.n_frames));
  matchar::detail::parallel_for(f.n_frames, num_threads(), matchar::detail::Schedule::Dynamic, 1,
                                [&](index_t s) {
                                  if (!used[s]) return;
                                  Structure st;
                                  st.positions = f.positions + 3 * f.offsets[s];
                                  st.n_atoms = f.offsets[s + 1] - f.offsets[s];
                                  st.cell = f.cells + 9 * s;
                                  for (int d = 0; d < 3; ++d) st.pbc[d] = f.pbc[3 * s + d];
                                  lists[s] = std::make_unique<NeighborList>(st, params_.cutoff);
                                });

  const int N = params_.n_radial, L = params_.max_angular, S = n_species_;
  const int LM = (L + 1) * (L + 1);
  const index_t n_coef = static_cast<index_t>(S) * LM * N;
  // Self term: the centre's own density, l = 0 only (featomic's center_atom_weight).
  std::vector<double> self(static_cast<std::size_t>(radial_->size()));
  radial_->compute_exact(0.0, self.data(), nullptr);
  const double y00 = 0.5 / std::sqrt(kPi);

  const SoapLevel level = soap_level();
  const bool base = level.accumulate == &level_base::accumulate;
  struct Scratch {
    std::vector<Neighbor> nbrs;
    std::vector<double> coef, R, Y, fR;
    std::vector<char> present;
  };
  matchar::detail::parallel_for(
      n_centers, num_threads(), matchar::detail::Schedule::Dynamic, 4,
      [&] {
        return Scratch{{},
                       std::vector<double>(static_cast<std::size_t>(n_coef)),
                       std::vector<double>(static_cast<std::size_t>(radial_->size())),
                       std::vector<double>(static_cast<std::size_t>(LM)),
                       std::vector<double>(static_cast<std::size_t>(N)),
                       std::vector<char>(static_cast<std::size_t>(S))};
      },
      [&](index_t c, Scratch& w) {
        auto& [nbrs, coef, R, Y, fR, present] = w;
        const index_t s = centers[2 * c], atom = centers[2 * c + 1];
        const int* species = f.species + f.offsets[s];
        std::fill(coef.begin(), coef.end(), 0.0);
        std::fill(present.begin(), present.end(), 0);
        double* c0 = coef.data() + static_cast<index_t>(species[atom]) * N;
        for (int n = 0; n < N; ++n) c0[n] += params_.center_weight * y00 * self[n];
        if (params_.center_weight != 0.0) present[species[atom]] = 1;
        nbrs.clear();
        lists[s]->neighbors(atom, nbrs);
        for (const Neighbor& nb : nbrs) {
          double fc = shifted_cosine(nb.r, params_.cutoff, params_.smoothing);
          if (fc == 0.0) continue;
          if (params_.scaling_radius > 0.0)
            fc *= params_.scaling_rate /
                  (params_.scaling_rate +
                   std::pow(nb.r / params_.scaling_radius, params_.scaling_exponent));
          double h[4];
          if (const double* row = radial_->spline_row(nb.r, h); row == nullptr)
            radial_->compute_exact(nb.r, R.data(), nullptr);
          else if (base)
            level_base::hermite(row, h, radial_->size(), R.data());
          else
            level.hermite(row, h, radial_->size(), R.data());
          const double inv = 1.0 / nb.r;
          present[species[nb.atom]] = 1;
          double* ca = coef.data() + static_cast<index_t>(species[nb.atom]) * N;
          if (base) {  // direct calls: inlined
            level_base::harmonics(L, nb.dx * inv, nb.dy * inv, nb.dz * inv, Y.data());
            level_base::accumulate(ca, R.data(), Y.data(), fc, L, N, static_cast<index_t>(S) * N,
                                   fR.data());
          } else {
            level.harmonics(L, nb.dx * inv, nb.dy * inv, nb.dz * inv, Y.data());
            level.accumulate(ca, R.data(), Y.data(), fc, L, N, static_cast<index_t>(S) * N,
                             fR.data());
          }
        }
        sink(c, coef.data(), present.data());
      });
}

template <class T>
void Soap::power_spectrum(const Frames& frames, const index_t* centers, index_t n_centers,
                          bool normalize, T* out) const {
  const int N = params_.n_radial, L = params_.max_angular, S = n_species_;
  const index_t nf = n_features();
  const bool compress = params_.compress;
  const index_t NN = static_cast<index_t>(N) * N, NT = static_cast<index_t>(N) * (N + 1) / 2;
  std::vector<double> factor(static_cast<std::size_t>(L + 1));
  for (int l = 0; l <= L; ++l) factor[l] = (l % 2 == 0 ? 1.0 : -1.0) / std::sqrt(2.0 * l + 1.0);
  const double sqrt2 = std::sqrt(2.0);
  const SoapLevel level = soap_level();
  struct Scratch {
    std::vector<double> packed, gram;
    std::vector<int> species;
  };
  run(frames, centers, n_centers, [&](index_t row, const double* coef, const char* present) {
    thread_local Scratch w;  // per OpenMP thread, reused across centres and calls
    T* o = out + row * nf;
    w.species.clear();
    for (int a = 0; a < S; ++a)
      if (present[a]) w.species.push_back(a);
    const int P = static_cast<int>(w.species.size());
    const index_t PN = static_cast<index_t>(P) * N;
    // Only the species present around the centre take part: for each l, one small Gram
    // product C_l^T C_l of the (2l+1, P N) packed coefficients gives every (a, b) block.
    for (int l = 0; l <= L; ++l) {
      const int M = 2 * l + 1;
      w.packed.resize(static_cast<std::size_t>(M * PN));
      w.gram.resize(static_cast<std::size_t>(PN * PN));
      for (int m = 0; m < M; ++m)
        for (int p = 0; p < P; ++p)
          std::copy_n(coef + (static_cast<index_t>(l * l + m) * S + w.species[p]) * N, N,
                      w.packed.data() + m * PN + static_cast<index_t>(p) * N);
      level.gram(w.packed.data(), M, PN, w.gram.data());
      for (int p = 0; p < P; ++p)
        for (int q = p; q < P; ++q) {
          const int a = w.species[p], b = w.species[q];
          const index_t offset = pair_offset_[static_cast<std::size_t>(a) * S + b];
          if (offset < 0) continue;
          const double s = (a == b ? 1.0 : sqrt2) * factor[l];
          const double* g0 =
              w.gram.data() + static_cast<index_t>(p) * N * PN + static_cast<index_t>(q) * N;
          if (a == b && compress) {
            // n1 <= n2 only; the block is symmetric, off-diagonal entries carry sqrt(2).
            T* dst = o + offset + l * NT;
            for (int n1 = 0; n1 < N; ++n1) {
              const double* g = g0 + n1 * PN;
              *dst++ = static_cast<T>(s * g[n1]);
              for (int n2 = n1 + 1; n2 < N; ++n2) *dst++ = static_cast<T>(s * sqrt2 * g[n2]);
            }
            continue;
          }
          T* dst = o + offset + l * NN;
          for (int n1 = 0; n1 < N; ++n1) {
            const double* g = g0 + n1 * PN;
            for (int n2 = 0; n2 < N; ++n2) dst[n1 * N + n2] = static_cast<T>(s * g[n2]);
          }
        }
    }
    // Blocks of species absent around this centre are exact zeros.
    for (int a = 0; a < S; ++a)
      for (int b = a; b < S; ++b) {
        const index_t offset = pair_offset_[static_cast<std::size_t>(a) * S + b];
        if (offset < 0 || (present[a] && present[b])) continue;
        std::fill_n(o + offset, (L + 1) * (a == b && compress ? NT : NN), T(0));
      }
    if (normalize) {
      double norm2 = 0.0;
      for (index_t q = 0; q < nf; ++q) norm2 += static_cast<double>(o[q]) * o[q];
      if (norm2 > 0.0) {
        const double inv = 1.0 / std::sqrt(norm2);
        for (index_t q = 0; q < nf; ++q) o[q] = static_cast<T>(o[q] * inv);
      }
    }
  });
}

void Soap::spherical_expansion(const Frames& frames, const index_t* centers, index_t n_centers,
                               double* out) const {
  const index_t nc = n_coefficients();
  run(frames, centers, n_centers,
      [&](index_t row, const double* coef, const char*) { std::copy_n(coef, nc, out + row * nc); });
}

template void Soap::power_spectrum<float>(const Frames&, const index_t*, index_t, bool,
                                          float*) const;
template void Soap::power_spectrum<double>(const Frames&, const index_t*, index_t, bool,
                                           double*) const;

}  // namespace matchar::atoms
