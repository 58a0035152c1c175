// AssignmentMethod::Enumerate: depth-first enumeration of every allowed permutation, the
// offset integrated analytically at each leaf (assignment.hpp).
#include <cstdint>
#include <vector>

#include "assignment_impl.hpp"

namespace matchar::nmr::detail {

template <class T>
void enumerate_evidence(const Problem<T>& pr, double* out) {
  const OffsetSpec& offset = pr.offset;
  // Tasks: (candidate, site chosen for peak 0), so that one large problem still
  // spreads over the threads.
  const index_t first = pr.group_sizes[0];
  const index_t n_tasks = pr.n_cand * first;
  std::vector<LogSumExp> parts(static_cast<std::size_t>(n_tasks));
  struct State {
    Prepared p;
    index_t prepared_for = -1;
  };
  matchar::detail::ParallelGuard guard;
  matchar::detail::parallel_for(
      guard, n_tasks, pr.threads, matchar::detail::Schedule::Dynamic, 1,
      [&] {
        State s{pr.layout()};
        s.p.r.assign(static_cast<std::size_t>(pr.row_off_size), 0.0);
        s.p.w = s.p.r;
        s.p.lc = s.p.r;
        return s;
      },
      [&](index_t task, State& s) {
        Prepared& p = s.p;
        const index_t c = task / first, k0 = task % first;
        if (s.prepared_for != c) {
          prepare(pr.mean, pr.var, pr.y, pr.var_exp, c, p);
          s.prepared_for = c;
        }
        double shift = 0.0, lconst = 0.0;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, l = 0.0;
        if (offset.mode == OffsetMode::Fixed) {
          shift = offset.value - p.c0;
        } else if (offset.mode == OffsetMode::Marginal) {
          lconst = 0.5 * kLog2Pi + pr.log_prior_norm;
          if (!pr.flat) {  // the prior as a pseudo-observation r0 = prior_mean - c0
            const double r0 = offset.prior_mean - p.c0;
            s0 = pr.w0;
            s1 = pr.w0 * r0;
            s2 = pr.w0 * r0 * r0;
          }
        }
        Enumerator e(p, offset.mode, shift, lconst);
        e.guard = &guard;
        const index_t jk = k0;  // peak 0 -> site k0 (group 0 starts at 0)
        e.used[k0] = 1;
        e.dfs(1, s0 + p.w[jk], s1 + e.wr[jk], s2 + e.wr2[jk], l + p.lc[jk]);
        parts[task] = e.acc;
      });
  guard.finish();
  for (index_t c = 0; c < pr.n_cand; ++c) {
    LogSumExp acc;
    for (index_t k0 = 0; k0 < first; ++k0) acc.merge(parts[c * first + k0]);
    out[c] = acc.value() - pr.log_perms;
  }
}

template void enumerate_evidence<float>(const Problem<float>&, double*);
template void enumerate_evidence<double>(const Problem<double>&, double*);

}  // namespace matchar::nmr::detail
