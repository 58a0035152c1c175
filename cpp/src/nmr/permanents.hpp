// The permanents behind the assignment posterior (permanents.cpp), shared with the
// assignment methods (assignment_quadrature.cpp, assignment_banded.cpp): exact (subset
// dynamic program), Bethe (belief propagation), banded (a dynamic program over the band
// of sorted rows and columns), their scaling and marginals. Internal to cpp/src/nmr.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "matchar/common.hpp"

namespace matchar::nmr::detail {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxExactPermanent = 24;
constexpr int kMaxBand = 10;  // banded permanent: 4^10 states per row at most

// Streaming log-sum-exp: m + log(s) = log(sum exp(v)).
struct LogSumExp {
  double m = -kInf;
  double s = 0.0;
  void add(double v) {
    if (!(v > -kInf)) return;
    if (v > m) {
      s = s * std::exp(m - v) + 1.0;
      m = v;
    } else {
      s += std::exp(v - m);
    }
  }
  void merge(const LogSumExp& o) {
    if (!(o.m > -kInf)) return;
    if (o.m > m) {
      s = s * std::exp(m - o.m) + o.s;
      m = o.m;
    } else {
      s += o.s * std::exp(o.m - m);
    }
  }
  double value() const { return m > -kInf ? m + std::log(s) : -kInf; }
};

// Subtracts row then column maxima in place; returns the total subtracted (-inf for a
// zero row or column).
double scale_log_matrix(double* la, int k);
// log perm(exp(la)) of a scaled k x k log matrix, k <= kMaxExactPermanent; dp, a scratch.
double log_permanent_scaled(const double* la, int k, std::vector<double>& dp,
                            std::vector<double>& a);
// The Bethe approximation of the same by belief propagation (gamma: k x k messages, warm
// start and result; beliefs: k x k, optional).
double log_bethe_scaled(const double* la, int k, int max_iterations, double tolerance,
                        std::vector<double>& buf, double* gamma, double* beliefs = nullptr);
// Sinkhorn balancing of a log matrix in place.
void sinkhorn_log(double* la, int k, int iterations);
// Divides each row by its sum; false when a row sums to 0.
bool normalise_rows(double* m, int k);
// Exact assignment marginals of a scaled log matrix (f from log_permanent_scaled).
void permanent_marginals(double* la, int k, std::vector<double>& f, std::vector<double>& g,
                         std::vector<double>& a, double* marg);

// Scratch of the banded permanent.
struct BandedWork {
  std::vector<double> alpha, beta;
  std::vector<std::uint32_t> active;  // the states with weight, layer after layer
  std::vector<std::size_t> first;     // layer i's states: active[first[i] .. first[i + 1])
};

// The banded permanent of a linear k x k matrix b (rows and columns sorted), log; with
// marg, the marginals within the band.
double log_banded_permanent(const double* b, int k, int w, BandedWork& bw, double* marg);
// Sinkhorn balancing of the band |i - j| <= w; returns the total subtracted.
double balance_band(double* la, int k, int w, int iterations);
// log of the banded permanent of exp(la), balanced first; tmp and bm scratch.
double banded_log_value(const double* la, int k, int w, std::vector<double>& tmp,
                        std::vector<double>& bm, BandedWork& bw, double* marg);

}  // namespace matchar::nmr::detail
