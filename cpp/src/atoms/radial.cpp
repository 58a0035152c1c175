// Radial integrals of a Gaussian atomic density against the orthonormal GTO basis.
#include <omp.h>

#include <Eigen/Dense>
#include <cmath>
#include <string>

#include "matchar/atoms/soap.hpp"

#include "../parallel.hpp"

namespace matchar::atoms {
namespace {

constexpr double kPi = 3.14159265358979323846;

// exp(-x2) * Gamma(b) / Gamma(a) * U(a, b, z) for large z from the asymptotic series
//     1F1(a, b, z) ~ Gamma(b) / Gamma(a) e^z z^(a-b) sum_s (b-a)_s (1-a)_s / (s! z^s)
// (the other term is e^-z smaller). Returns false when the series does not get below
// 1e-17 relative before its terms start to grow again.
bool asymptotic_hyp1f1(double a, double b, double z, double x2, double* f) {
  double term = 1.0, sum = 1.0;
  for (int s = 0; s < 200; ++s) {
    const double next = term * (b - a + s) * (1.0 - a + s) / ((s + 1.0) * z);
    if (std::abs(next) <= 1e-17 * std::abs(sum)) {
      *f = sum * std::exp(std::lgamma(b) - std::lgamma(a) + z - x2 + (a - b) * std::log(z));
      return true;
    }
    if (std::abs(next) >= std::abs(term) && s > 0) return false;
    term = next;
    sum += term;
  }
  return false;
}

// exp(-x2) * 1F1(a, b, z) and exp(-x2) * (a / b) 1F1(a + 1, b + 1, z) for z >= 0,
// a, b > 0, by the (all-positive) power series, or its asymptotic form for large z. Partial sums
// are rescaled by 2^-600 whenever they grow past 2^600, and the count is folded into the final
// exp(-x2): e^z alone overflows for z > 709 while e^(z - x2) (here x2 >= z) does not.
void scaled_hyp1f1(double a, double b, double z, double x2, double* f, double* df) {
  constexpr double kBig = 0x1p600, kSmall = 0x1p-600;
  constexpr double kLogBig = 600.0 * 0.69314718055994530942;
  if (z > 60.0 && asymptotic_hyp1f1(a, b, z, x2, f) &&
      asymptotic_hyp1f1(a + 1.0, b + 1.0, z, x2, df)) {
    *df *= a / b;
    return;
  }
  double term = 1.0, dterm = a / b, s0 = term, s1 = dterm;
  int rescaled = 0;
  for (int k = 1; k < 1000000; ++k) {
    const double kk = static_cast<double>(k);
    term *= (a + kk - 1.0) / (b + kk - 1.0) * z / kk;
    dterm *= (a + kk) / (b + kk) * z / kk;
    s0 += term;
    s1 += dterm;
    if (s0 > kBig) {
      s0 *= kSmall;
      s1 *= kSmall;
      term *= kSmall;
      dterm *= kSmall;
      ++rescaled;
    }
    // Past the largest term, stop once the terms no longer change the sums.
    if (kk > z && term <= 1e-17 * s0 && dterm <= 1e-17 * s1) break;
  }
  const double scale = std::exp(rescaled * kLogBig - x2);
  *f = s0 * scale;
  *df = s1 * scale;
}

}  // namespace

GtoRadialIntegral::GtoRadialIntegral(const SoapParameters& p)
    : n_radial_(p.n_radial), max_angular_(p.max_angular), exact_(p.exact_radial) {
  if (!(p.cutoff > 0.0) || !std::isfinite(p.cutoff))
    throw InvalidArgument("cutoff must be a finite number > 0, got " + std::to_string(p.cutoff));
  if (!(p.atomic_width > 0.0) || !std::isfinite(p.atomic_width))
    throw InvalidArgument("atomic_width must be a finite number > 0, got " +
                          std::to_string(p.atomic_width));
  if (p.n_radial < 1 || p.n_radial > kMaxRadialSupported)
    throw InvalidArgument("max_radial (the number of radial functions) must be in 1.." +
                          std::to_string(kMaxRadialSupported) + ", got " +
                          std::to_string(p.n_radial));
  if (p.max_angular < 0 || p.max_angular > kMaxAngularSupported)
    throw InvalidArgument("max_angular must be in 0.." + std::to_string(kMaxAngularSupported) +
                          ", got " + std::to_string(p.max_angular));
  const int N = n_radial_;
  const double sigma2 = p.atomic_width * p.atomic_width;
  c_ = 1.0 / (2.0 * sigma2);
  global_ = std::pow(kPi / sigma2, 0.75);

  std::vector<double> widths(N), norm(N);
  gto_const_.resize(N);
  for (int n = 0; n < N; ++n) {
    widths[n] = p.cutoff * std::max(std::sqrt(static_cast<double>(n)), 1.0) / N;
    gto_const_[n] = 1.0 / (2.0 * widths[n] * widths[n]);
    norm[n] = std::sqrt(2.0 / (std::pow(widths[n], 2 * n + 3) * std::tgamma(n + 1.5)));
  }
  // Overlap of the normalised GTOs, then S^-1/2 by eigendecomposition (Loewdin).
  Eigen::MatrixXd S(N, N);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) {
      const double s1 = widths[i], s2 = widths[j], q = 0.5 * (3 + i + j);
      S(i, j) = std::pow(0.5 / (s1 * s1) + 0.5 / (s2 * s2), -q) /
                (std::pow(s1, i) * std::pow(s2, j)) * std::tgamma(q) /
                (std::pow(s1 * s2, 1.5) * std::sqrt(std::tgamma(i + 1.5) * std::tgamma(j + 1.5)));
    }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(S);
  const Eigen::VectorXd ev = eig.eigenvalues();
  for (int i = 0; i < N; ++i)
    if (!(ev(i) > 1e-14))
      throw InvalidArgument("the GTO overlap matrix is singular for max_radial=" +
                            std::to_string(N) + "; use fewer radial functions");
  const Eigen::MatrixXd inv_sqrt = eig.eigenvectors() * ev.cwiseInverse().cwiseSqrt().asDiagonal() *
                                   eig.eigenvectors().transpose();
  ortho_.resize(static_cast<std::size_t>(N * N));
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) ortho_[i * N + j] = inv_sqrt(i, j) * norm[j];

  if (exact_) return;
  // Cubic Hermite table on [0, cutoff]. The integrals vary on the scale of the density
  // width and of the narrowest GTO; a step of 1/80 of it keeps the interpolation error
  // below 1e-10 of the largest value (checked against compute_exact in tests/atoms).
  const double scale = std::min(p.atomic_width, widths[0]);
  step_ = scale / 80.0;
  n_nodes_ = static_cast<index_t>(std::ceil(p.cutoff / step_)) + 2;
  step_ = p.cutoff / static_cast<double>(n_nodes_ - 2);
  inv_step_ = 1.0 / step_;
  const int M = size();
  check_allocation(static_cast<std::size_t>(n_nodes_) * 2 * M, sizeof(double), "SOAP radial table");
  table_.resize(static_cast<std::size_t>(n_nodes_ * 2 * M));
  matchar::detail::parallel_for(n_nodes_, num_threads(), matchar::detail::Schedule::Dynamic, 8,
                                [&](index_t k) {
                                  double* row = table_.data() + k * 2 * M;
                                  compute_exact(static_cast<double>(k) * step_, row, row + M);
                                });
}

void GtoRadialIntegral::compute_exact(double r, double* values, double* derivatives) const {
  const int N = n_radial_;
  const double cr = c_ * r;
  double raw[kMaxRadialSupported], draw[kMaxRadialSupported];
  for (int l = 0; l <= max_angular_; ++l) {
    const double b = l + 1.5;
    const double crl = std::pow(cr, l);
    // l (c r)^l / r, written so that it is finite at r = 0.
    const double dcrl = l == 0 ? 0.0 : l * c_ * std::pow(cr, l - 1);
    for (int n = 0; n < N; ++n) {
      const double a = 0.5 * (n + l + 3);
      const double cg = c_ + gto_const_[n];
      const double z = cr * cr / cg;
      double f, df;
      scaled_hyp1f1(a, b, z, c_ * r * r, &f, &df);
      const double pref = global_ * std::exp(std::lgamma(a) - std::lgamma(b)) * std::pow(cg, -a);
      raw[n] = pref * crl * f;
      // d/dr [e^{-c r^2} (c r)^l 1F1(z)], z = c^2 r^2 / (c + g)
      draw[n] = pref * (dcrl * f + crl * df * 2.0 * c_ * c_ * r / cg - 2.0 * c_ * r * crl * f);
    }
    for (int i = 0; i < N; ++i) {
      double v = 0.0, d = 0.0;
      for (int j = 0; j < N; ++j) {
        v += ortho_[i * N + j] * raw[j];
        d += ortho_[i * N + j] * draw[j];
      }
      values[l * N + i] = v;
      if (derivatives != nullptr) derivatives[l * N + i] = d;
    }
  }
}

const double* GtoRadialIntegral::spline_row(double r, double h[4]) const {
  if (exact_) return nullptr;
  const double x = r * inv_step_;
  index_t k = static_cast<index_t>(x);
  if (k > n_nodes_ - 2) k = n_nodes_ - 2;
  const double t = x - static_cast<double>(k);
  const double t2 = t * t, t3 = t2 * t;
  h[0] = 2 * t3 - 3 * t2 + 1;
  h[1] = (t3 - 2 * t2 + t) * step_;
  h[2] = -2 * t3 + 3 * t2;
  h[3] = (t3 - t2) * step_;
  return table_.data() + k * 2 * size();
}

void GtoRadialIntegral::compute(double r, double* values) const {
  double h[4];
  const double* v0 = spline_row(r, h);
  if (v0 == nullptr) {
    compute_exact(r, values, nullptr);
    return;
  }
  const int M = size();
  const double* d0 = v0 + M;
  const double* v1 = d0 + M;
  const double* d1 = v1 + M;
#pragma omp simd
  for (int i = 0; i < M; ++i) values[i] = h[0] * v0[i] + h[1] * d0[i] + h[2] * v1[i] + h[3] * d1[i];
}

}  // namespace matchar::atoms
