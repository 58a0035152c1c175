// Shared by the assignment kernels (assignment.cpp and one file per method:
// assignment_enumerate.cpp, assignment_quadrature.cpp, assignment_banded.cpp,
// assignment_sampling.cpp): constants, each candidate's prepared problem, the
// enumeration of assignments (exact method and the sampling's exact tails), per-thread
// workspaces and the problem set up once per call. Private to cpp/src.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../parallel.hpp"
#include "matchar/nmr/assignment.hpp"
#include "permanents.hpp"

namespace matchar::nmr::detail {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLog2Pi = 1.8378770664093454836;
// Gaussian offset tails beyond this many standard deviations weigh < exp(-50).
constexpr double kRangeSigmas = 10.0;
constexpr index_t kMaxNodes = 4000000;
constexpr double kDefensive = 0.05;    // sampling: uniform share of the proposal
constexpr index_t kMaxMixture = 16;    // sampling: offset nodes in the proposal mixture
constexpr double kMixtureNats = 12.0;  // ... within this many nats of the heaviest
constexpr index_t kExactTail = 6;      // sampling: the least certain rows summed exactly (6! terms)
constexpr double kSerialWork = 2e5;    // below this many inner-loop steps, no thread team

// One candidate's problem in centred form: r_jk = y_j - mu_k - c0 (the constant c0 only
// shifts the offset, which keeps sums of squares small and offset-invariant), weights
// w_jk = 1 / (var_k + var_exp_j) and log normalisations lc_jk = -(log(2 pi / w_jk)) / 2.
// Only pairs (j, k) in the same group are filled.
struct Prepared {
  index_t n = 0;
  double c0 = 0.0;
  std::vector<double> r, w, lc;
  index_t size = 0;                  // entries stored: sum over peaks of their group size
  std::vector<index_t> row_off;      // (j, k) is stored at row_off[j] + k
  std::vector<index_t> group_start;  // per site: first index of its group
  std::vector<index_t> group_end;
};

template <class T>
void prepare(ConstMatrixView<T> mean, ConstMatrixView<T> var, const double* y,
             const double* var_exp, index_t c, Prepared& p) {
  const index_t n = mean.cols;
  double sy = 0.0, smu = 0.0;
  for (index_t j = 0; j < n; ++j) {
    sy += y[j];
    smu += static_cast<double>(mean(c, j));
  }
  p.c0 = (sy - smu) / static_cast<double>(n);
  for (index_t j = 0; j < n; ++j) {
    for (index_t k = p.group_start[j]; k < p.group_end[j]; ++k) {
      const double v = static_cast<double>(var(c, k)) + var_exp[j];
      if (!(v > 0.0) || !std::isfinite(v))
        throw InvalidArgument(
            "the total variance (slope^2 predicted_std^2 + sigma_exp^2) must be "
            "> 0, got " +
            std::to_string(v) + " for candidate " + std::to_string(c) + ", site " +
            std::to_string(k));
      const index_t jk = p.row_off[j] + k;
      p.w[jk] = 1.0 / v;
      p.r[jk] = y[j] - static_cast<double>(mean(c, k)) - p.c0;
      p.lc[jk] = -0.5 * (kLog2Pi + std::log(v));
    }
  }
}

// ---------------------------------------------------------------------------
// Enumeration with the offset integral at each leaf.
// ---------------------------------------------------------------------------
struct Enumerator {
  const Prepared& p;
  OffsetMode mode;
  double leaf_const;  // constant added to every leaf
  std::vector<char> used;
  std::vector<double> wr, wr2;
  LogSumExp acc;
  // Set for the exact enumeration: polled every 2^16 leaves (tens of millions of
  // permutations take seconds), and the search stops once a stop is requested.
  matchar::detail::ParallelGuard* guard = nullptr;
  std::uint64_t n_leaves = 0;

  Enumerator(const Prepared& prep, OffsetMode m, double shift, double lconst)
      : p(prep), mode(m), leaf_const(lconst), used(static_cast<std::size_t>(prep.n), 0) {
    const index_t nn = p.size;
    wr.assign(static_cast<std::size_t>(nn), 0.0);
    wr2.assign(static_cast<std::size_t>(nn), 0.0);
    for (index_t j = 0; j < p.n; ++j)
      for (index_t k = p.group_start[j]; k < p.group_end[j]; ++k) {
        const index_t jk = p.row_off[j] + k;
        const double r = p.r[jk] - shift;  // Fixed: residual about the known offset
        wr[jk] = p.w[jk] * r;
        wr2[jk] = p.w[jk] * r * r;
      }
  }

  void leaf(double s0, double s1, double s2, double l) {
    acc.add(leaf_value(s0, s1, s2, l));
    if (guard != nullptr && (++n_leaves & 0xFFFF) == 0) guard->poll();
  }

  double leaf_value(double s0, double s1, double s2, double l) const {
    double v;
    if (mode == OffsetMode::Fixed) {
      v = l - 0.5 * s2;
    } else {
      const double q = std::max(s2 - s1 * s1 / s0, 0.0);
      v = l - 0.5 * q;
      if (mode == OffsetMode::Marginal) v -= 0.5 * std::log(s0);
    }
    return v + leaf_const;
  }

  void dfs(index_t j, double s0, double s1, double s2, double l) {
    // Peaks of single-site groups have no choice: add them without recursing, so that the
    // depth is the number of peaks with a choice (thousands of fixed peaks are fine).
    while (j < p.n && p.group_end[j] - p.group_start[j] == 1) {
      const index_t jk = p.row_off[j] + j;
      s0 += p.w[jk];
      s1 += wr[jk];
      s2 += wr2[jk];
      l += p.lc[jk];
      ++j;
    }
    if (j == p.n) {
      leaf(s0, s1, s2, l);
      return;
    }
    const index_t row = p.row_off[j];
    for (index_t k = p.group_start[j]; k < p.group_end[j]; ++k) {
      if (used[k]) continue;
      if (guard != nullptr && guard->stopped()) return;  // the result is discarded
      used[k] = 1;
      dfs(j + 1, s0 + p.w[row + k], s1 + wr[row + k], s2 + wr2[row + k], l + p.lc[row + k]);
      used[k] = 0;
    }
  }
};

// Sum over every completion of a partial assignment: the rows in `tail` take the free
// sites of their groups in all possible ways (used[] marks the taken ones).
struct TailSum {
  const Prepared& p;
  const Enumerator& e;
  const std::vector<index_t>& tail;
  std::vector<char>& used;
  const std::vector<index_t>& gstart;
  const std::vector<index_t>& gend;
  LogSumExp& acc;

  void dfs(std::size_t d, double s0, double s1, double s2, double l) {
    if (d == tail.size()) {
      acc.add(e.leaf_value(s0, s1, s2, l));
      return;
    }
    const index_t j = tail[d];
    for (index_t k = gstart[j]; k < gend[j]; ++k) {
      if (used[k]) continue;
      used[k] = 1;
      const index_t jk = p.row_off[j] + k;
      dfs(d + 1, s0 + p.w[jk], s1 + e.wr[jk], s2 + e.wr2[jk], l + p.lc[jk]);
      used[k] = 0;
    }
  }
};

inline double log_factorial(index_t k) { return std::lgamma(static_cast<double>(k) + 1.0); }

struct Workspace {
  std::vector<double> la, dp, a, bp, beliefs, g, bm;
  std::vector<index_t> rord, cord;  // banded: sorted peaks / sites per group
  std::vector<int> band;            // banded: half-width per group (0 = not chosen yet)
  std::vector<double> band_change;  // banded: last change of the log-permanent with w
  BandedWork bw;
  std::vector<double> acc_p;  // details: weighted sum of the node marginals
  double acc_w = 0.0, acc_b = 0.0, acc_m = -kInf;
  std::vector<double> pnode;                    // n x n: BP beliefs at the current node
  std::vector<double> node_vals, node_beliefs;  // sampling: every node's value and beliefs
  std::vector<std::vector<double>> gamma;       // BP messages per group (warm starts)
};

// The call's problem, checked and set up once (assignment.cpp) and read by the methods.
template <class T>
struct Problem {
  ConstMatrixView<T> mean, var;
  const double* y = nullptr;
  const double* var_exp = nullptr;
  const index_t* group_sizes = nullptr;
  index_t n_groups = 0;
  OffsetSpec offset;
  AssignmentMethod method = AssignmentMethod::Enumerate;
  QuadratureOptions options;
  index_t n_cand = 0, n = 0;
  index_t kmax = 0;
  double log_perms = 0.0;  // log prod_g k_g!
  bool flat = true;        // no Gaussian offset prior
  double w0 = 0.0;         // the prior's precision (0 when flat)
  double log_prior_norm = 0.0;
  bool want_details = false;
  int threads = 1;
  std::vector<index_t> gstart, gend;  // per site: its group's first and past-the-end index
  std::vector<index_t> group_first;   // per group: its first index
  std::vector<index_t> row_off;       // (j, k) is stored at row_off[j] + k
  index_t row_off_size = 0;

  // A Prepared with this problem's layout (its r, w, lc not yet allocated).
  Prepared layout() const {
    Prepared p;
    p.n = n;
    p.group_start = gstart;
    p.group_end = gend;
    p.row_off = row_off;
    p.size = row_off_size;
    return p;
  }
};

// AssignmentMethod::Enumerate (assignment_enumerate.cpp).
template <class T>
void enumerate_evidence(const Problem<T>& pr, double* out);

// The offset quadrature of the other methods, one candidate per task
// (assignment_quadrature.cpp).
template <class T>
void quadrature_evidence(const Problem<T>& pr, double* out, AssignmentDetails details);

// AssignmentMethod::Banded (assignment_banded.cpp): rows (peaks) of each group sorted by
// experimental shift and columns (sites) by candidate c's predicted shift into ws.rord /
// ws.cord, and the bands not chosen yet.
template <class T>
void banded_order(const Problem<T>& pr, index_t c, Workspace& ws);

// Banded: log of group g's banded permanent of the scaled k x k matrix ws.la, choosing the
// group's half-width at the first node of a candidate (fixed, or grown until the value
// changes by < band_tolerance); beliefs (may be null): the assignment marginals.
double banded_group_value(const QuadratureOptions& options, index_t g, int k, Workspace& ws,
                          double* beliefs);

// AssignmentMethod::Sampling (assignment_sampling.cpp): log of the importance-sampling
// estimate of sum_pi g(pi) for candidate cand from the nodes kept in ws; -inf once a stop
// is requested (the result is then discarded).
template <class T>
double sample_evidence(const Problem<T>& pr, const Prepared& p, const Workspace& ws, index_t cand,
                       double r0, matchar::detail::ParallelGuard& guard);

}  // namespace matchar::nmr::detail
