// The offset quadrature shared by AssignmentMethod::Quadrature, Bethe, Banded and Sampling
// (assignment.hpp): one candidate per task; at each offset node b, the product over the
// groups of their permanents (exact, Bethe, or banded: assignment_banded.cpp), summed over
// the nodes that matter; Sampling then draws from the nodes evaluated
// (assignment_sampling.cpp).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "assignment_impl.hpp"

namespace matchar::nmr::detail {
namespace {

// Per-thread buffers, reused from one candidate to the next.
struct QuadratureState {
  Prepared p;
  Workspace ws;
  std::vector<double> nodes, upper;  // the offset nodes and their upper bounds
  std::vector<index_t> order;        // nodes by decreasing bound
};

// One candidate's evidence by the offset quadrature.
template <class T>
class CandidateQuadrature {
 public:
  CandidateQuadrature(const Problem<T>& pr, QuadratureState& s, index_t c,
                      matchar::detail::ParallelGuard& guard)
      : pr_(pr),
        p_(s.p),
        ws_(s.ws),
        s_(s),
        c_(c),
        guard_(guard),
        sampling_(pr.method == AssignmentMethod::Sampling),
        banded_(pr.method == AssignmentMethod::Banded) {}

  // out[c] (and the details of candidate c).
  void run(double* out, const AssignmentDetails& details) {
    Prepared& p = p_;
    Workspace& ws = ws_;
    const index_t c = c_, n = pr_.n, n_groups = pr_.n_groups;
    const OffsetSpec& offset = pr_.offset;
    const double log_perms = pr_.log_perms;
    prepare(pr_.mean, pr_.var, pr_.y, pr_.var_exp, c, p);
    ws.gamma.resize(static_cast<std::size_t>(n_groups));
    for (index_t g = 0; g < n_groups; ++g)
      ws.gamma[g].assign(static_cast<std::size_t>(pr_.group_sizes[g] * pr_.group_sizes[g]), 1.0);
    r0_ = offset.prior_mean - p.c0;
    // Banded: rows (peaks) by experimental shift, columns (sites) by predicted shift.
    if (banded_) banded_order(pr_, c, ws);
    if (sampling_ || pr_.want_details) {
      ws.pnode.assign(static_cast<std::size_t>(p.size), 0.0);
      for (index_t j = 0; j < n; ++j)
        if (pr_.gend[j] - pr_.gstart[j] == 1) ws.pnode[p.row_off[j] + j] = 1.0;
      ws.node_vals.clear();
      ws.node_beliefs.clear();
      ws.acc_p.assign(static_cast<std::size_t>(p.size), 0.0);
      ws.acc_w = 0.0;
      ws.acc_b = 0.0;
      ws.acc_m = -kInf;
    }
    if (offset.mode == OffsetMode::Fixed) {
      out[c] = node_value(offset.value - p.c0) - log_perms;
      if (sampling_) out[c] = sample_evidence(pr_, p, ws, c, r0_, guard_) - log_perms;
      write_details(details);
      guard_.poll();
      return;
    }
    const double h = offset_nodes();
    const LogSumExp acc =
        pr_.method == AssignmentMethod::Quadrature || banded_ ? sum_by_bound() : sum_walking_out();
    out[c] = acc.value() + std::log(h) - log_perms;
    if (sampling_ && !guard_.stopped())
      out[c] = sample_evidence(pr_, p, ws, c, r0_, guard_) - log_perms;
    if (!guard_.stopped()) write_details(details);
    guard_.poll();
  }

 private:
  double log_prior(double b) const {
    return pr_.flat ? 0.0 : pr_.log_prior_norm - 0.5 * pr_.w0 * (b - r0_) * (b - r0_);
  }

  // log prod_g perm(A_g(b)) at the centred offset b; with marginals (or sampling), the
  // node's assignment marginals into ws.pnode.
  double log_perms_at(double b) {
    const Prepared& p = p_;
    Workspace& ws = ws_;
    const QuadratureOptions& options = pr_.options;
    const bool banded = banded_, sampling = sampling_;
    double total_v = 0.0;
    for (index_t g = 0; g < pr_.n_groups; ++g) {
      const index_t s = pr_.group_first[g];
      const int k = static_cast<int>(pr_.group_sizes[g]);
      if (k == 1) {
        const index_t jk = p.row_off[s] + s;
        const double d = p.r[jk] - b;
        total_v += p.lc[jk] - 0.5 * p.w[jk] * d * d;
        continue;
      }
      ws.la.resize(static_cast<std::size_t>(k) * k);
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j) {
          const index_t jk =
              banded ? p.row_off[ws.rord[s + i]] + ws.cord[s + j] : p.row_off[s + i] + (s + j);
          const double d = p.r[jk] - b;
          ws.la[i * k + j] = p.lc[jk] - 0.5 * p.w[jk] * d * d;
        }
      const double sc = scale_log_matrix(ws.la.data(), k);
      if (!(sc > -kInf)) return -kInf;
      const bool marg = sampling || pr_.want_details;
      if (marg) ws.beliefs.resize(static_cast<std::size_t>(k) * k);
      double v;
      if (banded) {
        v = banded_group_value(options, g, k, ws, marg ? ws.beliefs.data() : nullptr);
        if (!(v > -kInf)) return -kInf;
      } else if (sampling || (pr_.method == AssignmentMethod::Bethe &&
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
            const index_t jk =
                banded ? p.row_off[ws.rord[s + i]] + ws.cord[s + j] : p.row_off[s + i] + (s + j);
            ws.pnode[jk] = ws.beliefs[i * k + j];
          }
    }
    return total_v;
  }

  // The node's log value; sampling keeps every evaluated node's BP beliefs for the
  // mixture proposal, details accumulate the node's weighted marginals and offset.
  double node_value(double b) {
    const Prepared& p = p_;
    Workspace& ws = ws_;
    const double v = log_perms_at(b) + log_prior(b);
    if (sampling_ && v > -kInf) {
      ws.node_vals.push_back(v);
      ws.node_beliefs.insert(ws.node_beliefs.end(), ws.pnode.begin(), ws.pnode.end());
    }
    if (pr_.want_details && v > -kInf) {
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
  }

  // Details of candidate c from the accumulated node sums (b_mean centred).
  void write_details(const AssignmentDetails& details) const {
    const Prepared& p = p_;
    const Workspace& ws = ws_;
    const index_t c = c_, n = pr_.n, n_groups = pr_.n_groups;
    const bool banded = banded_;
    for (index_t g = 0; g < n_groups; ++g) {
      if (details.band) details.band[c * n_groups + g] = banded ? ws.band[g] : 0;
      if (details.band_change)
        details.band_change[c * n_groups + g] = banded ? ws.band_change[g] : kNaN;
    }
    if (!pr_.want_details) return;
    if (!(ws.acc_w > 0.0)) throw Error("every offset node has zero weight");
    const double bm = ws.acc_b / ws.acc_w;
    if (details.offset_mean) details.offset_mean[c] = bm + p.c0;
    for (index_t j = 0; j < n; ++j) {
      double site = 0.0;
      for (index_t k = pr_.gstart[j]; k < pr_.gend[j]; ++k) {
        const index_t jk = p.row_off[j] + k;
        const double pr = ws.acc_p[jk] / ws.acc_w;
        if (details.marginals) details.marginals[c * p.size + jk] = pr;
        const double d = p.r[jk] - bm;
        if (pr > 0.0) site += pr * (p.lc[jk] - 0.5 * p.w[jk] * d * d);
      }
      if (details.site) details.site[c * n + j] = site;
    }
  }

  // The offset nodes (into s_.nodes) and an upper bound of each node's value (s_.upper);
  // returns the spacing h.
  double offset_nodes() {
    const Prepared& p = p_;
    const Workspace& ws = ws_;
    const QuadratureOptions& options = pr_.options;
    const std::vector<index_t>& gstart = pr_.gstart;
    const std::vector<index_t>& gend = pr_.gend;
    const index_t n = pr_.n;
    std::vector<double>& nodes = s_.nodes;
    std::vector<double>& upper = s_.upper;
    // Node spacing from the largest possible total precision (narrowest Gaussian in b);
    // range: every assignment's weighted-mean residual lies in [rmin, rmax].
    double wmax = pr_.w0, wmin = 0.0, rmin = kInf, rmax = -kInf;
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
                            std::to_string(kMaxNodes) + " nodes (candidate " + std::to_string(c_) +
                            "); the shifts span too wide a range "
                            "for their uncertainties");
    const index_t n_nodes = static_cast<index_t>(std::ceil(span)) + 1;
    nodes.resize(static_cast<std::size_t>(n_nodes));
    upper.resize(static_cast<std::size_t>(n_nodes));
    s_.order.resize(static_cast<std::size_t>(n_nodes));
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
      if (banded_) {
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
    return h;
  }

  // Quadrature, Banded: nodes by decreasing upper bound; the rest weigh < exp(-tail_nats)
  // each.
  LogSumExp sum_by_bound() {
    const std::vector<double>& nodes = s_.nodes;
    const std::vector<double>& upper = s_.upper;
    std::vector<index_t>& order = s_.order;
    const index_t n_nodes = static_cast<index_t>(nodes.size());
    LogSumExp acc;
    double best = -kInf;
    std::iota(order.begin(), order.end(), index_t{0});
    std::sort(order.begin(), order.end(),
              [&](index_t a, index_t b) { return upper[a] > upper[b]; });
    for (index_t q = 0; q < n_nodes; ++q) {
      const index_t t = order[q];
      if (upper[t] < best - pr_.options.tail_nats) break;
      const double v = node_value(nodes[t]);
      best = std::max(best, v);
      acc.add(v);
      if ((q & 15) == 15) {
        guard_.poll();
        if (guard_.stopped()) break;
      }
    }
    return acc;
  }

  // Bethe, Sampling (approximations): walk out from the node of largest bound,
  // warm-starting BP from the neighbour, until the value falls tail_nats below the best on
  // each side.
  LogSumExp sum_walking_out() {
    Workspace& ws = ws_;
    const std::vector<double>& nodes = s_.nodes;
    const std::vector<double>& upper = s_.upper;
    const index_t n_nodes = static_cast<index_t>(nodes.size());
    LogSumExp acc;
    double best = -kInf;
    const index_t t0 =
        static_cast<index_t>(std::max_element(upper.begin(), upper.end()) - upper.begin());
    std::vector<std::vector<double>> gamma0 = ws.gamma;
    for (int dir = 0; dir < 2 && !guard_.stopped(); ++dir) {
      if (dir == 1) {
        ws.gamma = gamma0;
      }
      for (index_t t = dir == 0 ? t0 : t0 - 1; t >= 0 && t < n_nodes; t += dir == 0 ? 1 : -1) {
        const double v = node_value(nodes[t]);
        if (dir == 0 && t == t0) gamma0 = ws.gamma;
        best = std::max(best, v);
        acc.add(v);
        if (v < best - pr_.options.tail_nats) break;
        guard_.poll();
        if (guard_.stopped()) break;
      }
    }
    return acc;
  }

  const Problem<T>& pr_;
  Prepared& p_;
  Workspace& ws_;
  QuadratureState& s_;
  const index_t c_;
  matchar::detail::ParallelGuard& guard_;
  const bool sampling_, banded_;
  double r0_ = 0.0;  // the prior mean, centred (prior_mean - c0)
};

}  // namespace

template <class T>
void quadrature_evidence(const Problem<T>& pr, double* out, AssignmentDetails details) {
  matchar::detail::ParallelGuard guard;
  matchar::detail::parallel_for(
      guard, pr.n_cand, pr.threads, matchar::detail::Schedule::Dynamic, 1,
      [&] {
        QuadratureState s{pr.layout(), {}, {}, {}, {}};
        s.p.r.assign(static_cast<std::size_t>(pr.row_off_size), 0.0);
        s.p.w = s.p.r;
        s.p.lc = s.p.r;
        return s;
      },
      [&](index_t c, QuadratureState& s) {
        CandidateQuadrature<T>(pr, s, c, guard).run(out, details);
      });
  guard.finish();
}

template void quadrature_evidence<float>(const Problem<float>&, double*, AssignmentDetails);
template void quadrature_evidence<double>(const Problem<double>&, double*, AssignmentDetails);

}  // namespace matchar::nmr::detail
