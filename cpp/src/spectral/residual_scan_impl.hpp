// The residual scan's arithmetic for one instruction-set level (ScanKernels of
// nmf_blocked.hpp): the expectation of a block, and the window scan of anomaly.cpp.
// Included only by nmf_blocked_impl.hpp, inside one instruction-set level's namespace
// (MATCHAR_ISA); the same rules apply (see nmf_blocked.hpp).
#ifndef MATCHAR_ISA
#error "define MATCHAR_ISA (the namespace of this level's kernels) before including"
#endif

#include <cstdint>

#include "nmf_blocked.hpp"

namespace matchar::spectral::detail::MATCHAR_ISA {
namespace {

// The residual scan's arithmetic (ScanKernels; the algorithm is described in
// anomaly.hpp and anomaly.cpp).
void scan_expectation(const double* __restrict w, index_t K, const double* __restrict Hb,
                      index_t ld, index_t Cb, double* __restrict mu) {
  for (index_t c = 0; c < Cb; ++c) mu[c] = 0.0;
  for (index_t k = 0; k < K; ++k) {
    const double wk = w[k];
    const double* __restrict h = Hb + k * ld;
    for (index_t c = 0; c < Cb; ++c) mu[c] += wk * h[c];
  }
}

void scan_add(double* __restrict dst, const double* __restrict src, index_t n) {
  for (index_t i = 0; i < n; ++i) dst[i] += src[i];
}

void scan_windows(const double* __restrict x, const double* __restrict mu, index_t Cb,
                  const index_t* windows, int n_windows, double* __restrict cx,
                  double* __restrict cm, double* __restrict ub, double* SM, std::int32_t* wc) {
  cx[0] = cm[0] = 0.0;
  for (index_t c = 0; c < Cb; ++c) {
    cx[c + 1] = cx[c] + x[c];
    cm[c + 1] = cm[c] + mu[c];
  }
  double best = -1.0, S_best = 0.0, M_best = 1.0;
  std::int32_t w_best = 0, c_best = 0;
  for (int jw = 0; jw < n_windows; ++jw) {
    const index_t w = windows[jw], n = Cb - w + 1;
    // log y <= y - 1 bounds G by 2 d^2 / M (d = S - M > 0; 0 without an excess): a
    // branch-free pass for the bounds (with a margin for rounding), then the logarithm
    // only where G can win
    for (index_t s = 0; s < n; ++s) {
      const double m = cm[s + w] - cm[s];
      const double M = m > 1e-12 ? m : 1e-12;
      const double d = (cx[s + w] - cx[s]) - M;
      ub[s] = d > 0.0 ? (2.0 + 1e-12) * d * d / M : 0.0;
    }
    double g_max = -1.0, S_max = 0.0, M_max = 1.0;
    index_t s_max = 0;
    for (index_t s = 0; s < n; ++s) {
      if (ub[s] <= g_max) continue;
      const double S = cx[s + w] - cx[s];
      const double m = cm[s + w] - cm[s];
      const double M = m > 1e-12 ? m : 1e-12;
      const double d = S - M;
      const double g = d > 0.0 ? 2.0 * (S * __builtin_log(S / M) - d) : 0.0;
      if (g > g_max) {
        g_max = g;
        S_max = S;
        M_max = M;
        s_max = s;
      }
    }
    if (g_max > best) {
      best = g_max;
      S_best = S_max;
      M_best = M_max;
      w_best = jw;
      c_best = static_cast<std::int32_t>(s_max);
    }
  }
  SM[0] = S_best;
  SM[1] = M_best;
  wc[0] = w_best;
  wc[1] = c_best;
}

}  // namespace
}  // namespace matchar::spectral::detail::MATCHAR_ISA
