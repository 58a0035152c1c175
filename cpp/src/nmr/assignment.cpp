#include "matchar/nmr/assignment.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../parallel.hpp"
#include "permanents.hpp"

namespace matchar::nmr {
namespace {

using namespace detail;  // the permanents (permanents.hpp)

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLog2Pi = 1.8378770664093454836;
// Gaussian offset tails beyond this many standard deviations weigh < exp(-50).
constexpr double kRangeSigmas = 10.0;
constexpr index_t kMaxNodes = 4000000;
constexpr double kDefensive = 0.05;
constexpr index_t kMaxMixture = 16;
constexpr index_t kExactTail = 6;  // sampling: the least certain rows summed exactly (6! terms) //
                                   // sampling: offset nodes in the proposal mixture
constexpr double kMixtureNats = 12.0;  // ... within this many nats of the heaviest
constexpr double kSerialWork = 2e5;  // below this many inner-loop steps, no thread team  // uniform
                                     // share of the importance-sampling proposal

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

double log_factorial(index_t k) { return std::lgamma(static_cast<double>(k) + 1.0); }

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

}  // namespace

template <class T>
void assignment_log_evidence(ConstMatrixView<T> mean, ConstMatrixView<T> var, const double* y,
                             const double* var_exp, const index_t* group_sizes, index_t n_groups,
                             OffsetSpec offset, AssignmentMethod method, QuadratureOptions options,
                             double* out, AssignmentDetails details) {
  const index_t n_cand = mean.rows, n = mean.cols;
  if (n_cand < 1 || n < 1) throw InvalidArgument("mean is empty");
  if (var.rows != n_cand || var.cols != n) throw InvalidArgument("var must have the shape of mean");
  if (y == nullptr || var_exp == nullptr || group_sizes == nullptr || out == nullptr)
    throw InvalidArgument("null pointer argument");
  // A serial check: these matrices are small, and a thread team would cost more.
  for (index_t c = 0; c < n_cand; ++c)
    for (index_t k = 0; k < n; ++k) {
      if (!std::isfinite(static_cast<double>(mean(c, k))))
        throw InvalidArgument("mean holds NaN or infinite values");
      if (!std::isfinite(static_cast<double>(var(c, k))))
        throw InvalidArgument("var holds NaN or infinite values");
    }
  for (index_t j = 0; j < n; ++j) {
    if (!std::isfinite(y[j])) throw InvalidArgument("y holds NaN or infinite values");
    if (!(var_exp[j] >= 0.0) || !std::isfinite(var_exp[j]))
      throw InvalidArgument("var_exp must be finite and >= 0");
  }
  for (index_t c = 0; c < n_cand; ++c)
    for (index_t k = 0; k < n; ++k)
      if (!(var(c, k) >= T(0))) throw InvalidArgument("var must be >= 0");
  if (n_groups < 1) throw InvalidArgument("group_sizes is empty");
  index_t total = 0, kmax = 0;
  double log_perms = 0.0;  // log prod_g k_g!
  for (index_t g = 0; g < n_groups; ++g) {
    if (group_sizes[g] < 1) throw InvalidArgument("group_sizes must be >= 1");
    total += group_sizes[g];
    kmax = std::max(kmax, group_sizes[g]);
    log_perms += log_factorial(group_sizes[g]);
  }
  if (total != n)
    throw InvalidArgument("group_sizes must sum to the number of sites " + std::to_string(n) +
                          ", got " + std::to_string(total));
  const bool flat = !std::isfinite(offset.prior_std);
  if (offset.mode == OffsetMode::Marginal && !flat && !(offset.prior_std > 0.0))
    throw InvalidArgument("the offset prior standard deviation must be > 0 (or inf for flat)");
  if (offset.mode == OffsetMode::Marginal && !std::isfinite(offset.prior_mean))
    throw InvalidArgument("the offset prior mean must be finite");
  if (offset.mode == OffsetMode::Fixed && !std::isfinite(offset.value))
    throw InvalidArgument("the fixed offset must be finite");
  if (method == AssignmentMethod::Enumerate) {
    if (log_perms > std::log(1e12))
      throw InvalidArgument("too many permutations to enumerate (exp(" + std::to_string(log_perms) +
                            ")); use a quadrature method");
  } else {
    if (offset.mode == OffsetMode::Profile)
      throw InvalidArgument(
          "a fitted (profile) offset with marginalised assignments is only "
          "available with enumeration");
    if (method == AssignmentMethod::Quadrature && kmax > kMaxExactPermanent)
      throw InvalidArgument(
          "exact quadrature handles assignment groups of <= " + std::to_string(kMaxExactPermanent) +
          " sites, got " + std::to_string(kmax) + "; use the Bethe approximation");
    if (!(options.step_factor > 0.0) || !(options.tail_nats > 0.0))
      throw InvalidArgument("step_factor and tail_nats must be > 0");
    if (method == AssignmentMethod::Sampling && options.n_samples < 1)
      throw InvalidArgument("n_samples must be >= 1");
    if (method == AssignmentMethod::Banded &&
        (options.band < 0 || options.band > kMaxBand || options.max_band < 1 ||
         options.max_band > kMaxBand || !(options.band_tolerance > 0.0)))
      throw InvalidArgument("band and max_band must be in [0, " + std::to_string(kMaxBand) +
                            "] (max_band >= 1) and band_tolerance > 0");
  }
  const bool want_details = details.marginals || details.site || details.offset_mean;
  if (want_details &&
      (method == AssignmentMethod::Enumerate || method == AssignmentMethod::Sampling))
    throw InvalidArgument(
        "assignment marginals and per-site contributions come from the quadrature methods "
        "(Quadrature, Bethe, Banded), not from enumeration or sampling");
  double pair_entries = 0.0;  // sum_g k_g^2, the per-candidate matrices' size
  for (index_t g = 0; g < n_groups; ++g)
    pair_entries += static_cast<double>(group_sizes[g]) * static_cast<double>(group_sizes[g]);
  check_allocation(static_cast<std::size_t>(pair_entries) * 5 *
                       static_cast<std::size_t>(std::max(1, num_threads())),
                   sizeof(double), "per-candidate residual matrices");
  if (method != AssignmentMethod::Enumerate && method != AssignmentMethod::Banded)
    check_allocation(
        (want_details ? 2 : 1) * (std::size_t{1} << std::min<index_t>(kmax, kMaxExactPermanent)),
        sizeof(double), "permanent dynamic-programming table");
  if (method == AssignmentMethod::Banded)
    check_allocation(static_cast<std::size_t>(kmax + 3)
                         << (2 * std::max(options.band, options.max_band)),
                     sizeof(double), "banded dynamic-programming table");

  std::vector<index_t> gstart(static_cast<std::size_t>(n)), gend(static_cast<std::size_t>(n));
  std::vector<index_t> group_first(static_cast<std::size_t>(n_groups));
  for (index_t g = 0, s = 0; g < n_groups; s += group_sizes[g], ++g) {
    group_first[g] = s;
    for (index_t j = s; j < s + group_sizes[g]; ++j) {
      gstart[j] = s;
      gend[j] = s + group_sizes[g];
    }
  }
  // Only pairs within a group are stored: sum_g k_g^2 entries, not n^2.
  std::vector<index_t> row_off(static_cast<std::size_t>(n));
  index_t row_off_size = 0;
  for (index_t j = 0; j < n; ++j) {
    row_off[j] = row_off_size - gstart[j];
    row_off_size += gend[j] - gstart[j];
  }
  const double w0 = flat ? 0.0 : 1.0 / (offset.prior_std * offset.prior_std);
  const double log_prior_norm = flat ? 0.0 : 0.5 * (std::log(w0) - kLog2Pi);

  // Small problems run on the calling thread: waking a team costs more than the work
  // (and much more on an oversubscribed machine).
  const double work =
      static_cast<double>(n_cand) * static_cast<double>(n) *
      (method == AssignmentMethod::Enumerate
           ? std::exp(log_perms)
           : 100.0 * static_cast<double>(kmax) * static_cast<double>(std::max<index_t>(kmax, 8)));
  const int threads = work < kSerialWork ? 1 : num_threads();

  matchar::detail::ParallelGuard guard;
  auto poll = [&]() { guard.poll(); };
  auto stopped = [&]() { return guard.stopped(); };

  if (method == AssignmentMethod::Enumerate) {
    // Tasks: (candidate, site chosen for peak 0), so that one large problem still
    // spreads over the threads.
    const index_t first = group_sizes[0];
    const index_t n_tasks = n_cand * first;
    std::vector<LogSumExp> parts(static_cast<std::size_t>(n_tasks));
    guard.begin_region();
#pragma omp parallel num_threads(threads)
    {
      Prepared p;
      p.n = n;
      p.group_start = gstart;
      p.group_end = gend;
      p.row_off = row_off;
      p.size = row_off_size;
      const bool ready = guard.run([&] {
        p.r.assign(static_cast<std::size_t>(row_off_size), 0.0);
        p.w = p.r;
        p.lc = p.r;
      });
      index_t prepared_for = -1;
#pragma omp for schedule(dynamic, 1) nowait
      for (index_t task = 0; task < n_tasks; ++task) {
        if (!ready) continue;
        guard.run([&] {
          const index_t c = task / first, k0 = task % first;
          if (prepared_for != c) {
            prepare(mean, var, y, var_exp, c, p);
            prepared_for = c;
          }
          double shift = 0.0, lconst = 0.0;
          double s0 = 0.0, s1 = 0.0, s2 = 0.0, l = 0.0;
          if (offset.mode == OffsetMode::Fixed) {
            shift = offset.value - p.c0;
          } else if (offset.mode == OffsetMode::Marginal) {
            lconst = 0.5 * kLog2Pi + log_prior_norm;
            if (!flat) {  // the prior as a pseudo-observation r0 = prior_mean - c0
              const double r0 = offset.prior_mean - p.c0;
              s0 = w0;
              s1 = w0 * r0;
              s2 = w0 * r0 * r0;
            }
          }
          Enumerator e(p, offset.mode, shift, lconst);
          e.guard = &guard;
          const index_t jk = k0;  // peak 0 -> site k0 (group 0 starts at 0)
          e.used[k0] = 1;
          e.dfs(1, s0 + p.w[jk], s1 + e.wr[jk], s2 + e.wr2[jk], l + p.lc[jk]);
          parts[task] = e.acc;
          poll();
        });
      }
      guard.arrive(omp_get_num_threads());
    }
    guard.finish();
    for (index_t c = 0; c < n_cand; ++c) {
      LogSumExp acc;
      for (index_t k0 = 0; k0 < first; ++k0) acc.merge(parts[c * first + k0]);
      out[c] = acc.value() - log_perms;
    }
    return;
  }

  // Quadrature methods: one candidate per task.
  guard.begin_region();
#pragma omp parallel num_threads(threads)
  {
    Prepared p;
    p.n = n;
    p.group_start = gstart;
    p.group_end = gend;
    p.row_off = row_off;
    p.size = row_off_size;
    const bool ready = guard.run([&] {
      p.r.assign(static_cast<std::size_t>(row_off_size), 0.0);
      p.w = p.r;
      p.lc = p.r;
    });
    Workspace ws;
    std::vector<double> nodes, upper;
    std::vector<index_t> order;
#pragma omp for schedule(dynamic, 1) nowait
    for (index_t c = 0; c < n_cand; ++c) {
      if (!ready) continue;
      guard.run([&] {
        prepare(mean, var, y, var_exp, c, p);
        const bool sampling = method == AssignmentMethod::Sampling;
        ws.gamma.resize(static_cast<std::size_t>(n_groups));
        for (index_t g = 0; g < n_groups; ++g)
          ws.gamma[g].assign(static_cast<std::size_t>(group_sizes[g] * group_sizes[g]), 1.0);
        const double r0 = offset.prior_mean - p.c0;
        auto log_prior = [&](double b) {
          return flat ? 0.0 : log_prior_norm - 0.5 * w0 * (b - r0) * (b - r0);
        };
        const bool banded = method == AssignmentMethod::Banded;
        // Banded: rows (peaks) by experimental shift, columns (sites) by predicted shift.
        if (banded) {
          ws.rord.resize(static_cast<std::size_t>(n));
          ws.cord.resize(static_cast<std::size_t>(n));
          std::iota(ws.rord.begin(), ws.rord.end(), index_t{0});
          std::iota(ws.cord.begin(), ws.cord.end(), index_t{0});
          for (index_t g = 0; g < n_groups; ++g) {
            const index_t s = group_first[g], e = s + group_sizes[g];
            std::stable_sort(ws.rord.begin() + s, ws.rord.begin() + e,
                             [&](index_t a, index_t b) { return y[a] < y[b]; });
            std::stable_sort(ws.cord.begin() + s, ws.cord.begin() + e, [&](index_t a, index_t b) {
              return static_cast<double>(mean(c, a)) < static_cast<double>(mean(c, b));
            });
          }
          ws.band.assign(static_cast<std::size_t>(n_groups), 0);
          ws.band_change.assign(static_cast<std::size_t>(n_groups), 0.0);
        }
        // log prod_g perm(A_g(b)) at the centred offset b; with marginals (or sampling), the
        // node's assignment marginals into ws.pnode.
        auto log_perms_at = [&](double b) {
          double total_v = 0.0;
          for (index_t g = 0; g < n_groups; ++g) {
            const index_t s = group_first[g];
            const int k = static_cast<int>(group_sizes[g]);
            if (k == 1) {
              const index_t jk = p.row_off[s] + s;
              const double d = p.r[jk] - b;
              total_v += p.lc[jk] - 0.5 * p.w[jk] * d * d;
              continue;
            }
            ws.la.resize(static_cast<std::size_t>(k) * k);
            for (int i = 0; i < k; ++i)
              for (int j = 0; j < k; ++j) {
                const index_t jk = banded ? p.row_off[ws.rord[s + i]] + ws.cord[s + j]
                                          : p.row_off[s + i] + (s + j);
                const double d = p.r[jk] - b;
                ws.la[i * k + j] = p.lc[jk] - 0.5 * p.w[jk] * d * d;
              }
            const double sc = scale_log_matrix(ws.la.data(), k);
            if (!(sc > -kInf)) return -kInf;
            const bool marg = sampling || want_details;
            if (marg) ws.beliefs.resize(static_cast<std::size_t>(k) * k);
            double v;
            if (banded) {
              auto value = [&](int w, double* m) {
                return banded_log_value(ws.la.data(), k, w, ws.a, ws.bm, ws.bw, m);
              };
              if (ws.band[g] == 0) {  // first node of this candidate: choose w
                if (options.band > 0) {
                  ws.band[g] = std::min(options.band, k - 1);
                  ws.band_change[g] = ws.band[g] == k - 1 ? 0.0 : kNaN;
                } else {
                  double prev = value(1, nullptr), change = kNaN;
                  int w = 1;
                  while (w < std::min(options.max_band, k - 1)) {
                    const double next = value(w + 1, nullptr);
                    ++w;
                    change = next - prev;
                    prev = next;
                    if (change < options.band_tolerance) break;
                  }
                  ws.band[g] = w;
                  ws.band_change[g] = w == k - 1 ? 0.0 : change;
                }
              }
              v = value(ws.band[g], marg ? ws.beliefs.data() : nullptr);
              if (!(v > -kInf)) return -kInf;
            } else if (sampling || (method == AssignmentMethod::Bethe &&
                                    k > std::min(options.exact_group_size, kMaxExactPermanent))) {
              v = log_bethe_scaled(ws.la.data(), k, options.max_bp_iterations, options.bp_tolerance,
                                   ws.bp, ws.gamma[g].data(), marg ? ws.beliefs.data() : nullptr);
              if (marg) normalise_rows(ws.beliefs.data(), k);
            } else {
              v = log_permanent_scaled(ws.la.data(), k, ws.dp, ws.a);
              if (marg) permanent_marginals(ws.la.data(), k, ws.dp, ws.g, ws.a, ws.beliefs.data());
            }
            total_v += sc + v;
            if (marg)
              for (int i = 0; i < k; ++i)
                for (int j = 0; j < k; ++j) {
                  const index_t jk = banded ? p.row_off[ws.rord[s + i]] + ws.cord[s + j]
                                            : p.row_off[s + i] + (s + j);
                  ws.pnode[jk] = ws.beliefs[i * k + j];
                }
          }
          return total_v;
        };
        // Sampling: keep every evaluated node's BP beliefs for the mixture proposal.
        auto node_value = [&](double b) {
          const double v = log_perms_at(b) + log_prior(b);
          if (sampling && v > -kInf) {
            ws.node_vals.push_back(v);
            ws.node_beliefs.insert(ws.node_beliefs.end(), ws.pnode.begin(), ws.pnode.end());
          }
          if (want_details && v > -kInf) {
            // Running weighted sums with weights exp(v - acc_m), acc_m the largest v so far.
            if (v > ws.acc_m) {
              const double f = std::exp(ws.acc_m - v);
              for (double& x : ws.acc_p) x *= f;
              ws.acc_w *= f;
              ws.acc_b *= f;
              ws.acc_m = v;
            }
            const double wt = std::exp(v - ws.acc_m);
            for (index_t i = 0; i < p.size; ++i) ws.acc_p[i] += wt * ws.pnode[i];
            ws.acc_w += wt;
            ws.acc_b += wt * b;
          }
          return v;
        };
        if (sampling || want_details) {
          ws.pnode.assign(static_cast<std::size_t>(p.size), 0.0);
          for (index_t j = 0; j < n; ++j)
            if (gend[j] - gstart[j] == 1) ws.pnode[p.row_off[j] + j] = 1.0;
          ws.node_vals.clear();
          ws.node_beliefs.clear();
          ws.acc_p.assign(static_cast<std::size_t>(p.size), 0.0);
          ws.acc_w = 0.0;
          ws.acc_b = 0.0;
          ws.acc_m = -kInf;
        }
        // Details of candidate c from the accumulated node sums (b_mean centred).
        auto write_details = [&]() {
          for (index_t g = 0; g < n_groups; ++g) {
            if (details.band) details.band[c * n_groups + g] = banded ? ws.band[g] : 0;
            if (details.band_change)
              details.band_change[c * n_groups + g] = banded ? ws.band_change[g] : kNaN;
          }
          if (!want_details) return;
          if (!(ws.acc_w > 0.0)) throw Error("every offset node has zero weight");
          const double bm = ws.acc_b / ws.acc_w;
          if (details.offset_mean) details.offset_mean[c] = bm + p.c0;
          for (index_t j = 0; j < n; ++j) {
            double site = 0.0;
            for (index_t k = gstart[j]; k < gend[j]; ++k) {
              const index_t jk = p.row_off[j] + k;
              const double pr = ws.acc_p[jk] / ws.acc_w;
              if (details.marginals) details.marginals[c * p.size + jk] = pr;
              const double d = p.r[jk] - bm;
              if (pr > 0.0) site += pr * (p.lc[jk] - 0.5 * p.w[jk] * d * d);
            }
            if (details.site) details.site[c * n + j] = site;
          }
        };
        // Importance sampling of sum_pi g(pi), g the offset-integrated likelihood of one
        // assignment (as at the leaves of the enumeration). The proposal is a mixture over
        // the heaviest offset nodes (weights ~ their mass): pick a node, then assign the
        // peaks in a fixed order (most confident first), each to a free site of its group
        // with probability ~ (BP marginal at that node, mixed with a small uniform share)
        // / (remaining column demand). Each sample is weighted by g / (mixture density).
        auto sample = [&](index_t cand) {
          double shift = 0.0, lconst = 0.0, s0i = 0.0, s1i = 0.0, s2i = 0.0;
          if (offset.mode == OffsetMode::Fixed) {
            shift = offset.value - p.c0;
          } else {
            lconst = 0.5 * kLog2Pi + log_prior_norm;
            if (!flat) {
              s0i = w0;
              s1i = w0 * r0;
              s2i = w0 * r0 * r0;
            }
          }
          Enumerator e(p, offset.mode, shift, lconst);
          const index_t nn = p.size;
          const index_t nv = static_cast<index_t>(ws.node_vals.size());
          if (nv == 0) return -kInf;
          std::vector<index_t> idx(static_cast<std::size_t>(nv));
          std::iota(idx.begin(), idx.end(), index_t{0});
          std::stable_sort(idx.begin(), idx.end(),
                           [&](index_t a, index_t b) { return ws.node_vals[a] > ws.node_vals[b]; });
          std::vector<index_t> comp;
          for (const index_t q : idx) {
            if (static_cast<index_t>(comp.size()) == kMaxMixture ||
                ws.node_vals[q] < ws.node_vals[idx[0]] - kMixtureNats)
              break;
            comp.push_back(q);
          }
          const index_t n_comp = static_cast<index_t>(comp.size());
          LogSumExp msum;
          for (const index_t q : comp) msum.add(ws.node_vals[q]);
          std::vector<double> Q(static_cast<std::size_t>(n_comp * nn), 0.0), logm(n_comp),
              cum(n_comp);
          std::vector<double> demand0(static_cast<std::size_t>(n_comp * n), 0.0);
          std::vector<double> confidence(static_cast<std::size_t>(n), 0.0), mix(n_comp);
          double run = 0.0;
          for (index_t t = 0; t < n_comp; ++t) {
            logm[t] = ws.node_vals[comp[t]] - msum.value();
            mix[t] = std::exp(logm[t]);
            run += mix[t];
            cum[t] = run;
            const double* P = ws.node_beliefs.data() + comp[t] * nn;
            double* Qt = Q.data() + t * nn;
            for (index_t j = 0; j < n; ++j) {
              const index_t k0 = gstart[j], k1 = gend[j];
              double tot = 0.0;
              for (index_t k = k0; k < k1; ++k) tot += P[p.row_off[j] + k];
              const double kk = static_cast<double>(k1 - k0);
              for (index_t k = k0; k < k1; ++k) {
                Qt[p.row_off[j] + k] =
                    (1.0 - kDefensive) * (tot > 0.0 ? P[p.row_off[j] + k] / tot : 1.0 / kk) +
                    kDefensive / kk;
                demand0[t * n + k] += Qt[p.row_off[j] + k];
              }
            }
          }
          for (index_t j = 0; j < n; ++j)
            for (index_t k = gstart[j]; k < gend[j]; ++k) {
              double a = 0.0;
              for (index_t t = 0; t < n_comp; ++t) a += mix[t] * Q[t * nn + p.row_off[j] + k];
              confidence[j] = std::max(confidence[j], a);
            }
          std::vector<index_t> row_order(static_cast<std::size_t>(n));
          std::iota(row_order.begin(), row_order.end(), index_t{0});
          std::stable_sort(row_order.begin(), row_order.end(),
                           [&](index_t a, index_t b) { return confidence[a] > confidence[b]; });

          std::mt19937_64 rng(options.seed ^
                              (0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(cand + 1)));
          std::uniform_real_distribution<double> unif(0.0, 1.0);
          std::vector<char>& used = e.used;
          std::vector<double> demand(static_cast<std::size_t>(n));
          std::vector<index_t> picks(static_cast<std::size_t>(n));
          // log q_t(pi) of component t for the assignment in picks (or, with draw, sample
          // it from component t into picks).
          // The least confident rows (the last n_tail of row_order) are not sampled: every
          // completion of a sampled prefix is summed exactly (Rao-Blackwellisation).
          index_t n_multi = 0;
          for (index_t j = 0; j < n; ++j) n_multi += gend[j] - gstart[j] > 1 ? 1 : 0;
          const index_t n_tail = std::min<index_t>(kExactTail, n_multi);
          const index_t n_prefix = n - n_tail;
          const bool any_choice_in_prefix = n_multi > n_tail;
          const std::vector<index_t> tail(row_order.begin() + n_prefix, row_order.end());
          auto sequential = [&](index_t t, bool draw) {
            const double* Qt = Q.data() + t * nn;
            std::fill(used.begin(), used.end(), 0);
            std::copy(demand0.begin() + t * n, demand0.begin() + (t + 1) * n, demand.begin());
            double logq = 0.0;
            for (index_t step = 0; step < n_prefix; ++step) {
              const index_t j = row_order[step];
              const index_t k0 = gstart[j], k1 = gend[j];
              if (k1 - k0 == 1) {
                picks[j] = k0;
                continue;
              }
              double tot = 0.0;
              for (index_t k = k0; k < k1; ++k)
                if (!used[k]) tot += Qt[p.row_off[j] + k] / std::max(demand[k], 1e-12);
              if (draw) {
                double u = unif(rng) * tot;
                index_t pick = -1;
                for (index_t k = k0; k < k1; ++k) {
                  if (used[k]) continue;
                  pick = k;
                  u -= Qt[p.row_off[j] + k] / std::max(demand[k], 1e-12);
                  if (u <= 0.0) break;
                }
                picks[j] = pick;
              }
              const index_t pk = picks[j];
              logq += std::log(Qt[p.row_off[j] + pk] / std::max(demand[pk], 1e-12) / tot);
              used[pk] = 1;
              for (index_t k = k0; k < k1; ++k) demand[k] -= Qt[p.row_off[j] + k];
            }
            return logq;
          };
          LogSumExp is, completions;
          TailSum complete{p, e, tail, used, gstart, gend, completions};
          const int n_draws = any_choice_in_prefix ? options.n_samples : 1;
          for (int smp = 0; smp < n_draws; ++smp) {
            if ((smp & 63) == 0) {
              poll();
              if (stopped()) return -kInf;  // the result is discarded: Interrupted follows
            }
            const double u = unif(rng) * cum[n_comp - 1];
            const index_t t0 = std::min<index_t>(
                static_cast<index_t>(std::lower_bound(cum.begin(), cum.end(), u) - cum.begin()),
                n_comp - 1);
            sequential(t0, true);
            LogSumExp lq;
            for (index_t t = 0; t < n_comp; ++t) lq.add(logm[t] + sequential(t, false));
            double s0 = s0i, s1 = s1i, s2 = s2i, l = 0.0;
            for (index_t step = 0; step < n_prefix; ++step) {
              const index_t j = row_order[step];
              const index_t jk = p.row_off[j] + picks[j];
              s0 += p.w[jk];
              s1 += e.wr[jk];
              s2 += e.wr2[jk];
              l += p.lc[jk];
            }
            // used[] holds the prefix's sites (the last sequential() call re-marked them)
            completions = LogSumExp();
            complete.dfs(0, s0, s1, s2, l);
            is.add(completions.value() - (any_choice_in_prefix ? lq.value() : 0.0));
          }
          return is.value() - std::log(static_cast<double>(n_draws));
        };
        if (offset.mode == OffsetMode::Fixed) {
          out[c] = node_value(offset.value - p.c0) - log_perms;
          if (sampling) out[c] = sample(c) - log_perms;
          write_details();
          poll();
          return;
        }
        // Node spacing from the largest possible total precision (narrowest Gaussian in b);
        // range: every assignment's weighted-mean residual lies in [rmin, rmax].
        double wmax = w0, wmin = 0.0, rmin = kInf, rmax = -kInf;
        for (index_t j = 0; j < n; ++j) {
          double hi = 0.0, lo = kInf;
          for (index_t k = gstart[j]; k < gend[j]; ++k) {
            const index_t jk = p.row_off[j] + k;
            hi = std::max(hi, p.w[jk]);
            lo = std::min(lo, p.w[jk]);
            rmin = std::min(rmin, p.r[jk]);
            rmax = std::max(rmax, p.r[jk]);
          }
          wmax += hi;
          wmin += lo;
        }
        const double h = options.step_factor / std::sqrt(wmax);
        const double pad = kRangeSigmas / std::sqrt(wmin);
        double lo_b = rmin - pad, hi_b = rmax + pad;
        const double span = (hi_b - lo_b) / h;
        if (!(span < static_cast<double>(kMaxNodes)))
          throw InvalidArgument("the offset quadrature would need more than " +
                                std::to_string(kMaxNodes) + " nodes (candidate " +
                                std::to_string(c) +
                                "); the shifts span too wide a range "
                                "for their uncertainties");
        const index_t n_nodes = static_cast<index_t>(std::ceil(span)) + 1;
        nodes.resize(static_cast<std::size_t>(n_nodes));
        upper.resize(static_cast<std::size_t>(n_nodes));
        order.resize(static_cast<std::size_t>(n_nodes));
        // Upper bound: perm(A_g) <= min(prod of row sums, prod of column sums); for the
        // banded permanent, sums over the widest band allowed only (in sorted order).
        const index_t wb = options.band > 0 ? options.band : options.max_band;
        auto entry = [&](index_t jk, double b) {
          const double d = p.r[jk] - b;
          return p.lc[jk] - 0.5 * p.w[jk] * d * d;
        };
        for (index_t t = 0; t < n_nodes; ++t) {
          const double b = lo_b + static_cast<double>(t) * h;
          nodes[t] = b;
          double urow = 0.0, ucol = 0.0;
          if (banded) {
            for (index_t q = 0; q < n; ++q) {
              const index_t lo = std::max(gstart[q], q - wb), hi = std::min(gend[q] - 1, q + wb);
              LogSumExp row, col;
              for (index_t q2 = lo; q2 <= hi; ++q2) {
                row.add(entry(p.row_off[ws.rord[q]] + ws.cord[q2], b));
                col.add(entry(p.row_off[ws.rord[q2]] + ws.cord[q], b));
              }
              urow += row.value();
              ucol += col.value();
            }
            upper[t] = std::min(urow, ucol) + log_prior(b);
            continue;
          }
          for (index_t j = 0; j < n; ++j) {
            LogSumExp row;
            for (index_t k = gstart[j]; k < gend[j]; ++k) row.add(entry(p.row_off[j] + k, b));
            urow += row.value();
          }
          for (index_t k = 0; k < n; ++k) {
            LogSumExp col;
            for (index_t j = gstart[k]; j < gend[k]; ++j) col.add(entry(p.row_off[j] + k, b));
            ucol += col.value();
          }
          upper[t] = std::min(urow, ucol) + log_prior(b);
        }
        LogSumExp acc;
        double best = -kInf;
        if (method == AssignmentMethod::Quadrature || banded) {
          // Nodes by decreasing upper bound; the rest weigh < exp(-tail_nats) each.
          std::iota(order.begin(), order.end(), index_t{0});
          std::sort(order.begin(), order.end(),
                    [&](index_t a, index_t b) { return upper[a] > upper[b]; });
          for (index_t q = 0; q < n_nodes; ++q) {
            const index_t t = order[q];
            if (upper[t] < best - options.tail_nats) break;
            const double v = node_value(nodes[t]);
            best = std::max(best, v);
            acc.add(v);
            if ((q & 15) == 15) {
              poll();
              if (stopped()) break;
            }
          }
        } else {
          // Approximations: walk out from the node of largest bound, warm-starting BP from
          // the neighbour, until the value falls tail_nats below the best on each side.
          const index_t t0 =
              static_cast<index_t>(std::max_element(upper.begin(), upper.end()) - upper.begin());
          std::vector<std::vector<double>> gamma0 = ws.gamma;
          for (int dir = 0; dir < 2 && !stopped(); ++dir) {
            if (dir == 1) {
              ws.gamma = gamma0;
            }
            for (index_t t = dir == 0 ? t0 : t0 - 1; t >= 0 && t < n_nodes;
                 t += dir == 0 ? 1 : -1) {
              const double v = node_value(nodes[t]);
              if (dir == 0 && t == t0) gamma0 = ws.gamma;
              best = std::max(best, v);
              acc.add(v);
              if (v < best - options.tail_nats) break;
              poll();
              if (stopped()) break;
            }
          }
        }
        out[c] = acc.value() + std::log(h) - log_perms;
        if (sampling && !stopped()) out[c] = sample(c) - log_perms;
        if (!stopped()) write_details();
        poll();
      });
    }
    guard.arrive(omp_get_num_threads());
  }
  guard.finish();
}

template void assignment_log_evidence<float>(ConstMatrixView<float>, ConstMatrixView<float>,
                                             const double*, const double*, const index_t*, index_t,
                                             OffsetSpec, AssignmentMethod, QuadratureOptions,
                                             double*, AssignmentDetails);
template void assignment_log_evidence<double>(ConstMatrixView<double>, ConstMatrixView<double>,
                                              const double*, const double*, const index_t*, index_t,
                                              OffsetSpec, AssignmentMethod, QuadratureOptions,
                                              double*, AssignmentDetails);

}  // namespace matchar::nmr
