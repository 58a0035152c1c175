// AssignmentMethod::Banded: each group's permanent restricted to a band of half-width w
// around the diagonal in shift order (assignment.hpp, permanents.hpp).
#include <algorithm>
#include <numeric>
#include <vector>

#include "assignment_impl.hpp"

namespace matchar::nmr::detail {

template <class T>
void banded_order(const Problem<T>& pr, index_t c, Workspace& ws) {
  const index_t n = pr.n, n_groups = pr.n_groups;
  const index_t* group_sizes = pr.group_sizes;
  const std::vector<index_t>& group_first = pr.group_first;
  const double* y = pr.y;
  const auto& mean = pr.mean;
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

double banded_group_value(const QuadratureOptions& options, index_t g, int k, Workspace& ws,
                          double* beliefs) {
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
  return value(ws.band[g], beliefs);
}

template void banded_order<float>(const Problem<float>&, index_t, Workspace&);
template void banded_order<double>(const Problem<double>&, index_t, Workspace&);

}  // namespace matchar::nmr::detail
