// AssignmentMethod::Sampling: importance sampling over whole assignments, each weighted
// by its offset-integrated likelihood (assignment.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "assignment_impl.hpp"

namespace matchar::nmr::detail {

// Importance sampling of sum_pi g(pi), g the offset-integrated likelihood of one
// assignment (as at the leaves of the enumeration). The proposal is a mixture over
// the heaviest offset nodes (weights ~ their mass): pick a node, then assign the
// peaks in a fixed order (most confident first), each to a free site of its group
// with probability ~ (BP marginal at that node, mixed with a small uniform share)
// / (remaining column demand). Each sample is weighted by g / (mixture density).
template <class T>
double sample_evidence(const Problem<T>& pr, const Prepared& p, const Workspace& ws, index_t cand,
                       double r0, matchar::detail::ParallelGuard& guard) {
  const OffsetSpec& offset = pr.offset;
  const QuadratureOptions& options = pr.options;
  const bool flat = pr.flat;
  const double w0 = pr.w0, log_prior_norm = pr.log_prior_norm;
  const std::vector<index_t>& gstart = pr.gstart;
  const std::vector<index_t>& gend = pr.gend;
  const index_t n = pr.n;
  auto poll = [&]() { guard.poll(); };
  auto stopped = [&]() { return guard.stopped(); };
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
  std::vector<double> Q(static_cast<std::size_t>(n_comp * nn), 0.0), logm(n_comp), cum(n_comp);
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
}

template double sample_evidence<float>(const Problem<float>&, const Prepared&, const Workspace&,
                                       index_t, double, matchar::detail::ParallelGuard&);
template double sample_evidence<double>(const Problem<double>&, const Prepared&, const Workspace&,
                                        index_t, double, matchar::detail::ParallelGuard&);

}  // namespace matchar::nmr::detail
