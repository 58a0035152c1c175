// SOAP spherical expansion and power spectrum, in featomic's convention.
//
// Density of the neighbours of species a around centre i:
//     rho_i^a(x) = sum_{j in a} f_c(r_ij) g(x - r_ij) + w_c delta_{a, a_i} g(x)
// with g a Gaussian of width atomic_width normalised so that int g^2 = 1, f_c the
// shifted-cosine cutoff (1 below cutoff - smoothing, 0 at the cutoff) and w_c the
// centre-atom weight. Expansion coefficients:
//     c^a_{nlm}(i) = sum_j f_c(r_ij) R_nl(r_ij) Y_lm(r_ij / r_ij)  (+ self term, l = 0)
// with R_nl the exact radial integral of g against the Loewdin-orthonormalised GTO basis
// r^n exp(-r^2 / (2 sigma_n^2)), sigma_n = cutoff * max(sqrt(n), 1) / n_radial, and Y_lm
// real spherical harmonics without the Condon-Shortley phase (Wikipedia's real form;
// m < 0 <-> sin(|m| phi)). Power spectrum:
//     p^{ab}_{l n1 n2}(i) = s_ab (-1)^l / sqrt(2l + 1) sum_m c^a_{n1 l m} c^b_{n2 l m}
// with s_ab = sqrt(2) for a != b and 1 for a == b, stored for a <= b.
#pragma once

#include <memory>
#include <vector>

#include "matchar/atoms/neighbors.hpp"
#include "matchar/common.hpp"

namespace matchar::atoms {

struct SoapParameters {
  double cutoff = 5.0;        // Å
  int n_radial = 8;           // number of radial functions (featomic's max_radial + 1)
  int max_angular = 6;        // l = 0..max_angular
  double atomic_width = 0.3;  // Å, Gaussian width of the atomic density
  double smoothing = 0.5;     // Å, width of the shifted-cosine cutoff region (0: step)
  double center_weight = 1.0;
  // Radial scaling of the neighbour densities (Willatt, Musil & Ceriotti, PCCP 20, 29661
  // (2018); featomic's "Willatt2018"): each neighbour's Gaussian is multiplied by
  // u(r) = rate / (rate + (r / scaling_radius)^exponent). scaling_radius = 0: none.
  double scaling_radius = 0.0;  // Å
  double scaling_rate = 1.0;
  double scaling_exponent = 0.0;
  bool exact_radial = false;  // true: evaluate 1F1 for every pair; false: spline table
  // Same-species blocks store n1 <= n2 only, off-diagonal entries times sqrt(2), so
  // that dot products (kernels) between rows are unchanged.
  bool compress = false;
};

inline constexpr int kMaxAngularSupported = 20;
inline constexpr int kMaxRadialSupported = 24;

// Radial integrals R_nl(r) of the Gaussian density against the orthonormal GTO basis.
class GtoRadialIntegral {
 public:
  explicit GtoRadialIntegral(const SoapParameters& p);
  // values[l * n_radial + n] for l = 0..max_angular, n = 0..n_radial-1.
  void compute(double r, double* values) const;
  // The analytic value (and d/dr when derivatives != nullptr), no spline.
  void compute_exact(double r, double* values, double* derivatives) const;
  int size() const { return (max_angular_ + 1) * n_radial_; }
  double spline_step() const { return step_; }
  // The spline at r: the table rows of the nodes around r (values, derivatives at the
  // node below, then at the node above; size() each) and the Hermite weights h[4], so
  // that compute(r, v) is v[i] = h[0] row[i] + h[1] row[M + i] + h[2] row[2M + i] +
  // h[3] row[3M + i]. nullptr when the basis is evaluated exactly (compute_exact).
  const double* spline_row(double r, double h[4]) const;

 private:
  int n_radial_, max_angular_;
  double c_;                       // 1 / (2 atomic_width^2)
  double global_;                  // (pi / atomic_width^2)^(3/4)
  std::vector<double> gto_const_;  // 1 / (2 sigma_n^2)
  std::vector<double> ortho_;      // (n, n) row-major: S^-1/2 diag(N)
  bool exact_;
  double step_ = 0.0, inv_step_ = 0.0;
  index_t n_nodes_ = 0;
  std::vector<double> table_;  // (n_nodes, 2, size): values then derivatives per node
};

// Input for a batch of structures. Positions and species are concatenated, structure s
// owning atoms [offsets[s], offsets[s + 1]).
struct Frames {
  const double* positions = nullptr;  // (n_atoms_total, 3)
  const int* species = nullptr;       // (n_atoms_total,) index into the species list
  const index_t* offsets = nullptr;   // (n_frames + 1,)
  index_t n_frames = 0;
  const double* cells = nullptr;  // (n_frames, 3, 3), rows are lattice vectors
  const bool* pbc = nullptr;      // (n_frames, 3)
};

class Soap {
 public:
  // pair_mask: (n_species, n_species) row-major, entry [a * n_species + b] (a <= b) says
  // whether the (a, b) neighbour-species block is computed; empty: every pair.
  Soap(const SoapParameters& params, int n_species, std::vector<char> pair_mask = {});

  const SoapParameters& parameters() const { return params_; }
  int n_species() const { return n_species_; }
  // Features per environment: sum over kept pairs of (max_angular + 1) * n_radial^2
  // (n_radial (n_radial + 1) / 2 for same-species pairs when compressed).
  index_t n_features() const;
  // Coefficients per environment: (max_angular + 1)^2 * n_species * n_radial.
  index_t n_coefficients() const;

  // centers: (n_centers, 2) row-major [frame, atom]. out: (n_centers, n_features)
  // row-major, written in full. Rows are unit-normalised when `normalize`.
  template <class T>
  void power_spectrum(const Frames& frames, const index_t* centers, index_t n_centers,
                      bool normalize, T* out) const;

  // Spherical expansion, out: (n_centers, n_coefficients) in featomic's dense layout
  // [lm = l^2 + l + m][species][n].
  void spherical_expansion(const Frames& frames, const index_t* centers, index_t n_centers,
                           double* out) const;

 private:
  SoapParameters params_;
  int n_species_;
  std::shared_ptr<const GtoRadialIntegral> radial_;
  std::vector<index_t> pair_offset_;  // (S, S): offset of block (a, b) in a row, -1: not kept
  index_t n_features_ = 0;

  template <class Sink>
  void run(const Frames& frames, const index_t* centers, index_t n_centers, Sink&& sink) const;
};

// Real spherical harmonics (featomic/Wikipedia convention) of the unit vector (x, y, z),
// out[l * l + l + m] for l <= max_angular. Exposed for tests.
void real_spherical_harmonics(int max_angular, double x, double y, double z, double* out);

}  // namespace matchar::atoms
