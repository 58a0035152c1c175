// Log-evidence of NMR candidate structures against experimental shifts, with the
// reference offset and (optionally) the peak-to-site assignment marginalised.
//
// Model, for one nucleus and candidate c (all in ppm):
//     y_j = b + mu_{c, pi(j)} + e_j,   e_j ~ N(0, var_{c, pi(j)} + var_exp_j)
// mu is the candidate's predicted shift without the offset (slope * prediction), var its
// predicted variance (slope^2 * std^2), y the experimental shifts, b the reference offset
// and pi a bijection from experimental peaks to predicted sites that only maps a peak to a
// site of the same assignment group, uniform a priori (1 / prod_g k_g!). Peaks and sites
// are ordered so that each group occupies a contiguous block of group_sizes[g] indices.
// The derivations are written out in docs/nmr.md.
#pragma once

#include <cstdint>
#include <limits>

#include "matchar/common.hpp"

namespace matchar::nmr {

enum class OffsetMode {
  Marginal = 0,  // integrate b: flat prior (density 1 per ppm) or Gaussian prior
  Profile = 1,   // maximise over b (per assignment)
  Fixed = 2,     // b = value
};

struct OffsetSpec {
  OffsetMode mode = OffsetMode::Marginal;
  double value = 0.0;  // Fixed: the known offset
  double prior_mean = 0.0;
  // Marginal: standard deviation of a Gaussian prior on b; +inf means flat.
  double prior_std = std::numeric_limits<double>::infinity();
};

enum class AssignmentMethod {
  // Depth-first enumeration of every allowed permutation with the offset integral done
  // analytically at each leaf (exact; cost ~ e * prod_g k_g! per candidate).
  Enumerate = 0,
  // Trapezoid quadrature over the offset (spacing << the narrowest offset posterior, so
  // the error is ~exp(-2 pi^2 / step_factor^2)) times the exact permanent of each group's
  // matrix by subset dynamic programming (cost ~ nodes * k 2^k; groups of <= 24 sites).
  Quadrature = 1,
  // Same quadrature, but groups larger than exact_group_size use the Bethe permanent
  // (sum-product belief propagation), an approximation and a lower bound.
  Bethe = 2,
  // Importance sampling over whole assignments, each weighted by its offset-integrated
  // likelihood; the proposal is a mixture over the heaviest offset nodes of the Bethe
  // quadrature, sequential with the BP marginals of that node. Unbiased for the evidence,
  // error ~ 1/sqrt(n_samples) (heavy-tailed; see docs/nmr.md).
  Sampling = 3,
  // Same quadrature (coarser grid), with each group's permanent restricted to a band:
  // rows (peaks) sorted by experimental shift, columns (sites) by predicted shift, and only
  // the permutations with |rank(pi(j)) - rank(j)| <= w summed, exactly, by dynamic
  // programming over the used columns of the band (cost ~ nodes * k 4^w (2w+1)). A lower
  // bound of the permanent; w per group is fixed (band > 0) or grown from 1 at the
  // heaviest offset node until the log-permanent changes by < band_tolerance.
  Banded = 4,
};

struct QuadratureOptions {
  double step_factor = 0.7;      // node spacing = step_factor / sqrt(max total precision)
  double tail_nats = 45.0;       // nodes whose upper bound is this far below are skipped
  int exact_group_size = 8;      // Bethe method: groups up to this size are exact
  int max_bp_iterations = 300;   // Bethe method
  double bp_tolerance = 1e-10;   // Bethe method: relative change of the messages
  int n_samples = 2000;          // Sampling method: assignments drawn per candidate
  std::uint64_t seed = 0;        // Sampling method: candidate c uses a stream from (seed, c)
  int band = 0;                  // Banded method: the half-width w; 0 = adaptive
  double band_tolerance = 1e-3;  // Banded, adaptive: stop growing w below this change (nats)
  int max_band = 7;              // Banded, adaptive: largest w tried
};

// Optional outputs (each may be null). Only the quadrature methods (Quadrature, Bethe,
// Banded) fill marginals, site and offset_mean; Enumerate and Sampling throw if any of
// those is requested.
//   marginals: (n_candidates, sum_j k_{g(j)}) packed: for peak j the posterior
//     probabilities that it is site k, for the sites k of its group in order, averaged
//     over the offset posterior (Bethe: BP beliefs, Banded: within the band).
//   site: (n_candidates, n_sites) posterior-expected log N(y_j; b_mean + mu_k, var_jk + ...)
//     of each peak j, sum_k P_jk log N(...), at the posterior-mean offset b_mean.
//   offset_mean: (n_candidates) posterior mean of the offset b (the given one when Fixed).
//   band: (n_candidates, n_groups) the half-width used per group (Banded; 0 otherwise).
//   band_change: (n_candidates, n_groups) adaptive band: the change of the log-permanent
//     from w-1 to w at the heaviest node (< band_tolerance when converged); 0 when the band
//     holds every permutation (w = k-1); NaN for a fixed band or another method.
// band and band_change may be given with Enumerate and Sampling (then 0 / NaN).
struct AssignmentDetails {
  double* marginals = nullptr;
  double* site = nullptr;
  double* offset_mean = nullptr;
  index_t* band = nullptr;
  double* band_change = nullptr;
};

// out[c] = log p(y | candidate c) for every candidate (row) of mean/var.
// mean, var: (n_candidates, n_sites) any strides; y, var_exp: n_sites contiguous;
// group_sizes: n_groups positive counts summing to n_sites. var + var_exp must be > 0.
// Profile offsets are only available with Enumerate. Throws InvalidArgument for bad
// input, Interrupted on Ctrl-C (see common.hpp), OutOfMemory before huge allocations.
template <class T>
void assignment_log_evidence(ConstMatrixView<T> mean, ConstMatrixView<T> var, const double* y,
                             const double* var_exp, const index_t* group_sizes, index_t n_groups,
                             OffsetSpec offset, AssignmentMethod method, QuadratureOptions options,
                             double* out, AssignmentDetails details = {});

// Natural log of the permanent of the k x k matrix exp(log_a) (row-major, k <= 30),
// by subset dynamic programming with per-layer rescaling (no cancellation, no overflow).
double log_permanent(const double* log_a, int k);

// Natural log of the Bethe permanent of exp(log_a) (row-major k x k), a lower bound of
// the permanent (Gurvits), by sum-product belief propagation.
double log_bethe_permanent(const double* log_a, int k, int max_iterations, double tolerance);

// Natural log of the banded permanent of exp(log_a) (row-major k x k, rows and columns in
// the given order): the sum over permutations with |pi(i) - i| <= w only (0 <= w <= 12).
// With marginals (k x k, may be null): P(i -> j) under that restricted sum.
double log_banded_permanent(const double* log_a, int k, int w, double* marginals);

// Assignment marginals of exp(log_a) (k x k, k <= 24) by forward-backward over subsets:
// marginals[i k + j] = a_ij perm(A without row i, column j) / perm(A). Returns log perm.
double log_permanent_marginals(const double* log_a, int k, double* marginals);

}  // namespace matchar::nmr
