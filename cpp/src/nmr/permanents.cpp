// Permanents of k x k matrices given as logs (see permanents.hpp), and the public
// log_permanent, log_bethe_permanent, log_banded_permanent and log_permanent_marginals.
#include "permanents.hpp"

#include <algorithm>
#include <string>

#include "matchar/nmr/assignment.hpp"

namespace matchar::nmr {
namespace detail {

// ---------------------------------------------------------------------------
// Permanents of k x k matrices given as logs.
// ---------------------------------------------------------------------------

// Subtracts row then column maxima in place (so every row and column has an entry 0 and
// all entries are <= 0); returns the total subtracted.
double scale_log_matrix(double* la, int k) {
  double total = 0.0;
  for (int i = 0; i < k; ++i) {
    double m = -kInf;
    for (int j = 0; j < k; ++j) m = std::max(m, la[i * k + j]);
    if (!(m > -kInf)) return -kInf;  // a zero row: permanent 0
    for (int j = 0; j < k; ++j) la[i * k + j] -= m;
    total += m;
  }
  for (int j = 0; j < k; ++j) {
    double m = -kInf;
    for (int i = 0; i < k; ++i) m = std::max(m, la[i * k + j]);
    if (!(m > -kInf)) return -kInf;
    for (int i = 0; i < k; ++i) la[i * k + j] -= m;
    total += m;
  }
  return total;
}

// t = log(exp(t) + exp(v)), for t and v possibly -inf.
inline void log_add(double& t, double v) {
  if (v > t)
    t = v + std::log1p(std::exp(t - v));
  else if (t > -kInf)
    t = t + std::log1p(std::exp(v - t));
}

// lf(S) = log of the sum over assignments of rows 0..|S|-1 onto the columns S, for every
// subset S of the k columns (log matrix la, k x k): the permanent's forward recursion in
// log space, for matrices whose every matching underflows the linear one.
void log_forward(const double* la, int k, std::vector<double>& lf) {
  const std::size_t full = (std::size_t{1} << k) - 1;
  lf.assign(full + 1, -kInf);
  lf[0] = 0.0;
  // masks in increasing numeric order visit every mask after all of its subsets
  for (std::size_t mask = 0; mask < full; ++mask) {
    const double d = lf[mask];
    if (!(d > -kInf)) continue;
    const double* li = la + static_cast<std::size_t>(__builtin_popcountll(mask)) * k;
    for (int j = 0; j < k; ++j)
      if (!(mask >> j & 1)) log_add(lf[mask | (std::size_t{1} << j)], d + li[j]);
  }
}

double log_permanent_scaled(const double* la, int k, std::vector<double>& dp,
                            std::vector<double>& a) {
  const std::size_t full = (std::size_t{1} << k) - 1;
  a.resize(static_cast<std::size_t>(k) * k);
  for (int i = 0; i < k * k; ++i) a[i] = std::exp(la[i]);
  dp.assign(full + 1, 0.0);
  dp[0] = 1.0;
  // Masks in increasing numeric order visit every mask after all of its subsets. Entries
  // are <= 1, so a mask of i rows holds at most k!/(k-i)! (< 1e24 for k <= 24): no overflow.
  for (std::size_t mask = 0; mask < full; ++mask) {
    const double d = dp[mask];
    if (d == 0.0) continue;
    const int i = __builtin_popcountll(mask);
    const double* ai = a.data() + static_cast<std::size_t>(i) * k;
    for (int j = 0; j < k; ++j)
      if (!(mask >> j & 1)) dp[mask | (std::size_t{1} << j)] += d * ai[j];
  }
  if (dp[full] > 1e-280) return std::log(dp[full]);
  // Every matching is tiny: redo the recursion in log space (rare, slow but exact).
  std::vector<double> ld;
  log_forward(la, k, ld);
  return ld[full];
}

// Sum-product BP on the bipartite matching graph, with messages as ratios:
//   rho_ij = 1 / sum_{l != j} a_il gamma_il,  gamma_ij = 1 / sum_{l != i} a_lj rho_lj,
// beliefs P_ij = x / (1 + x) with x = a_ij rho_ij gamma_ij, and the Bethe free energy
//   log perm_B = sum P log(a / P) + sum (1 - P) log(1 - P).
// gamma: k x k messages, in/out (all 1 for a cold start; the previous offset node's
// messages make a good warm start).
double log_bethe_scaled(const double* la, int k, int max_iterations, double tolerance,
                        std::vector<double>& buf, double* gamma, double* beliefs) {
  const std::size_t kk = static_cast<std::size_t>(k) * k;
  buf.assign(3 * kk, 0.0);
  double* a = buf.data();
  double* rho = a + kk;
  double* t = rho + kk;
  // Entries below exp(-600) are raised to it, so that messages stay finite.
  for (std::size_t i = 0; i < kk; ++i) a[i] = std::exp(std::max(la[i], -600.0));
  auto exclusive_inverse = [&](const double* v, index_t stride, int m, double* outp,
                               index_t ostride) {
    double s = 0.0;
    for (int l = 0; l < m; ++l) s += v[l * stride];
    for (int l = 0; l < m; ++l) {
      double rest = s - v[l * stride];
      if (rest < 1e-8 * s) {  // cancellation: sum the others explicitly
        rest = 0.0;
        for (int q = 0; q < m; ++q)
          if (q != l) rest += v[q * stride];
      }
      outp[l * ostride] = 1.0 / std::max(rest, 1e-300);
    }
  };
  for (int it = 0; it < max_iterations; ++it) {
    for (std::size_t i = 0; i < kk; ++i) t[i] = a[i] * gamma[i];
    for (int i = 0; i < k; ++i) exclusive_inverse(t + i * k, 1, k, rho + i * k, 1);
    for (std::size_t i = 0; i < kk; ++i) t[i] = a[i] * rho[i];
    double delta = 0.0;
    for (int j = 0; j < k; ++j) {
      // gamma_new into t's column j is not possible (t is read), so compute per column.
      double s = 0.0;
      for (int i = 0; i < k; ++i) s += t[i * k + j];
      for (int i = 0; i < k; ++i) {
        double rest = s - t[i * k + j];
        if (rest < 1e-8 * s) {
          rest = 0.0;
          for (int q = 0; q < k; ++q)
            if (q != i) rest += t[q * k + j];
        }
        const double g = 1.0 / std::max(rest, 1e-300);
        delta = std::max(delta, std::abs(g - gamma[i * k + j]) / g);
        gamma[i * k + j] = g;
      }
    }
    if (delta < tolerance) break;
  }
  for (std::size_t i = 0; i < kk; ++i) t[i] = a[i] * gamma[i];
  for (int i = 0; i < k; ++i) exclusive_inverse(t + i * k, 1, k, rho + i * k, 1);
  double value = 0.0;
  for (std::size_t i = 0; i < kk; ++i) {
    const double x = a[i] * rho[i] * gamma[i];
    if (beliefs) beliefs[i] = std::isfinite(x) ? x / (1.0 + x) : 1.0;
    if (!(x > 0.0)) continue;
    if (!std::isfinite(x)) {  // P = 1
      value += std::log(a[i]);
      continue;
    }
    const double log1px = std::log1p(x);
    const double P = x / (1.0 + x);
    const double logP = std::log(x) - log1px;
    value += P * (std::log(a[i]) - logP) - (1.0 - P) * log1px;
  }
  if (!std::isfinite(value)) throw Error("the Bethe permanent did not converge to a finite value");
  return value;
}

// Sinkhorn balancing of a log matrix in place (rows then columns to log-sum 0): leaves the
// assignment marginals unchanged and makes the permanent >= k!/k^k, so that the linear
// dynamic programs below cannot underflow.
void sinkhorn_log(double* la, int k, int iterations) {
  for (int it = 0; it < iterations; ++it) {
    for (int i = 0; i < k; ++i) {
      LogSumExp s;
      for (int j = 0; j < k; ++j) s.add(la[i * k + j]);
      const double v = s.value();
      if (!(v > -kInf)) return;
      for (int j = 0; j < k; ++j) la[i * k + j] -= v;
    }
    for (int j = 0; j < k; ++j) {
      LogSumExp s;
      for (int i = 0; i < k; ++i) s.add(la[i * k + j]);
      const double v = s.value();
      if (!(v > -kInf)) return;
      for (int i = 0; i < k; ++i) la[i * k + j] -= v;
    }
  }
}

// Divides each row of the k x k matrix m by its sum; false when a row sums to 0.
bool normalise_rows(double* m, int k) {
  for (int i = 0; i < k; ++i) {
    double s = 0.0;
    for (int j = 0; j < k; ++j) s += m[i * k + j];
    if (!(s > 0.0) || !std::isfinite(s)) return false;
    for (int j = 0; j < k; ++j) m[i * k + j] /= s;
  }
  return true;
}

// The forward-backward of permanent_marginals in log space: for matrices whose every
// matching is so unlikely that the linear recursion underflows even after balancing
// (shifts far from every prediction, e.g. in the wrong units). Slower (a log and an exp
// per step) but exact; throws only when every matching has weight 0.
void permanent_marginals_log(const double* la, int k, std::vector<double>& lf,
                             std::vector<double>& lg, double* marg) {
  const std::size_t full = (std::size_t{1} << k) - 1;
  log_forward(la, k, lf);
  lg.assign(full + 1, -kInf);
  lg[full] = 0.0;
  for (std::size_t mask = full; mask-- > 0;) {
    const double* li = la + static_cast<std::size_t>(__builtin_popcountll(mask)) * k;
    double s = -kInf;
    for (int j = 0; j < k; ++j)
      if (!(mask >> j & 1)) log_add(s, li[j] + lg[mask | (std::size_t{1} << j)]);
    lg[mask] = s;
  }
  std::fill(marg, marg + static_cast<std::size_t>(k) * k, -kInf);
  for (std::size_t mask = 0; mask < full; ++mask) {
    const double d = lf[mask];
    if (!(d > -kInf)) continue;
    const int i = __builtin_popcountll(mask);
    const double* li = la + static_cast<std::size_t>(i) * k;
    for (int j = 0; j < k; ++j)
      if (!(mask >> j & 1)) log_add(marg[i * k + j], d + li[j] + lg[mask | (std::size_t{1} << j)]);
  }
  for (int i = 0; i < k; ++i) {
    double m = -kInf;
    for (int j = 0; j < k; ++j) m = std::max(m, marg[i * k + j]);
    if (!(m > -kInf) || !std::isfinite(m))
      throw Error("the assignment marginals underflowed (every assignment has zero weight)");
    for (int j = 0; j < k; ++j) marg[i * k + j] = std::exp(marg[i * k + j] - m);
  }
  if (!normalise_rows(marg, k))
    throw Error("the assignment marginals underflowed (every assignment has zero weight)");
}

// Assignment marginals P_ij = a_ij perm(A without row i, column j) / perm(A) of the scaled
// log matrix la (entries <= 0) by forward-backward over subsets:
//   f(S) = sum over assignments of rows 0..|S|-1 onto the columns S,
//   g(S) = sum over assignments of rows |S|..k-1 onto the columns not in S,
//   P_ij ~ sum_{|S| = i, j not in S} f(S) a_ij g(S + j)   (each row sums to 1).
// la is modified (Sinkhorn-balanced) when the linear recursion would underflow.
void permanent_marginals(double* la, int k, std::vector<double>& f, std::vector<double>& g,
                         std::vector<double>& a, double* marg) {
  const std::size_t full = (std::size_t{1} << k) - 1;
  for (int attempt = 0; attempt < 2; ++attempt) {
    a.resize(static_cast<std::size_t>(k) * k);
    for (int i = 0; i < k * k; ++i) a[i] = std::exp(la[i]);
    f.assign(full + 1, 0.0);
    g.assign(full + 1, 0.0);
    f[0] = 1.0;
    for (std::size_t mask = 0; mask < full; ++mask) {
      const double d = f[mask];
      if (d == 0.0) continue;
      const double* ai = a.data() + static_cast<std::size_t>(__builtin_popcountll(mask)) * k;
      for (int j = 0; j < k; ++j)
        if (!(mask >> j & 1)) f[mask | (std::size_t{1} << j)] += d * ai[j];
    }
    g[full] = 1.0;
    for (std::size_t mask = full; mask-- > 0;) {
      const double* ai = a.data() + static_cast<std::size_t>(__builtin_popcountll(mask)) * k;
      double s = 0.0;
      for (int j = 0; j < k; ++j)
        if (!(mask >> j & 1)) s += ai[j] * g[mask | (std::size_t{1} << j)];
      g[mask] = s;
    }
    std::fill(marg, marg + static_cast<std::size_t>(k) * k, 0.0);
    for (std::size_t mask = 0; mask < full; ++mask) {
      const double d = f[mask];
      if (d == 0.0) continue;
      const int i = __builtin_popcountll(mask);
      const double* ai = a.data() + static_cast<std::size_t>(i) * k;
      for (int j = 0; j < k; ++j)
        if (!(mask >> j & 1)) marg[i * k + j] += d * ai[j] * g[mask | (std::size_t{1} << j)];
    }
    if (f[full] > 1e-250 && normalise_rows(marg, k)) return;
    sinkhorn_log(la, k, 200);
  }
  if (normalise_rows(marg, k)) return;
  permanent_marginals_log(la, k, f, g, marg);
}

// Banded permanent: the sum over the permutations pi with |pi(i) - i| <= w of
// prod_i b_{i, pi(i)}, for a k x k matrix b (linear, row-major) whose rows and columns are
// both sorted by shift, so that far-from-diagonal assignments carry negligible weight.
// Rows are taken in order; the state before row i is the set of used columns among
// i-w .. i+w-1 (bit t <-> column i-w+t; columns < 0 count as used, columns < i-w must all
// be used, columns >= i+w cannot be). Cost O(k 2^(2w) (2w+1)); every layer is rescaled
// to sum 1 (log scales accumulated), so nothing under- or overflows. With marg, also the
// marginals P(row i -> column j) within the band, by a backward pass.

double log_banded_permanent(const double* b, int k, int w, BandedWork& bw, double* marg) {
  const std::size_t S = std::size_t{1} << (2 * w);
  const std::uint32_t init = (std::uint32_t{1} << w) - 1;
  const bool keep = marg != nullptr;
  // Only the states reached are visited (for interior rows C(2w, w) of the 4^w masks).
  bw.alpha.assign((keep ? static_cast<std::size_t>(k + 1) : 2) * S, 0.0);
  bw.active.clear();
  bw.first.assign(1, 0);
  auto layer = [&](int i) {
    return bw.alpha.data() +
           (keep ? static_cast<std::size_t>(i) : static_cast<std::size_t>(i & 1)) * S;
  };
  // Calls fn(column, next state) for every allowed move of row i from state mask.
  auto moves = [&](int i, std::uint32_t mask, auto&& fn) {
    const int t0 = std::max(0, w - i), t1 = std::min(2 * w, k - 1 - i + w);
    for (int t = t0; t <= t1; ++t) {
      if (mask >> t & 1) continue;
      const std::uint32_t nm = mask | (std::uint32_t{1} << t);
      if (!(nm & 1)) continue;  // column i-w would be left unused for good
      fn(i - w + t, nm >> 1);
    }
  };
  double log_scale = 0.0;
  layer(0)[init] = 1.0;
  bw.active.push_back(init);
  bw.first.push_back(1);
  for (int i = 0; i < k; ++i) {
    const double* cur = layer(i);
    double* nxt = layer(i + 1);
    if (!keep && i > 0)  // the buffer of layer i-1: clear its states
      for (std::size_t q = bw.first[i - 1]; q < bw.first[i]; ++q) nxt[bw.active[q]] = 0.0;
    const double* bi = b + static_cast<std::size_t>(i) * k;
    const std::size_t q0 = bw.first[i], q1 = bw.first[i + 1];
    for (std::size_t q = q0; q < q1; ++q) {
      const std::uint32_t mask = bw.active[q];
      const double v = cur[mask];
      moves(i, mask, [&](int col, std::uint32_t ns) {
        const double x = v * bi[col];
        if (x == 0.0) return;
        if (nxt[ns] == 0.0) bw.active.push_back(ns);
        nxt[ns] += x;
      });
    }
    bw.first.push_back(bw.active.size());
    double s = 0.0;
    for (std::size_t q = q1; q < bw.active.size(); ++q) s += nxt[bw.active[q]];
    if (!(s > 0.0) || !std::isfinite(s)) return -kInf;
    const double inv = 1.0 / s;
    for (std::size_t q = q1; q < bw.active.size(); ++q) nxt[bw.active[q]] *= inv;
    log_scale += std::log(s);
  }
  if (!keep) return log_scale;
  bw.beta.assign(2 * S, 0.0);
  double* nb = bw.beta.data() + S;  // beta_{i+1}
  double* cb = bw.beta.data();      // beta_i
  for (std::size_t q = bw.first[k]; q < bw.first[k + 1]; ++q) nb[bw.active[q]] = 1.0;
  std::fill(marg, marg + static_cast<std::size_t>(k) * k, 0.0);
  for (int i = k - 1; i >= 0; --i) {
    const double* cur = layer(i);
    const double* bi = b + static_cast<std::size_t>(i) * k;
    double* mi = marg + static_cast<std::size_t>(i) * k;
    // beta_i is rescaled by sum_mask alpha_i beta_i (HMM scaling), not by its own sum,
    // so that the states the forward pass reaches keep O(1) values.
    double s = 0.0;
    for (std::size_t q = bw.first[i]; q < bw.first[i + 1]; ++q) {
      const std::uint32_t mask = bw.active[q];
      const double av = cur[mask];
      double acc = 0.0;
      moves(i, mask, [&](int col, std::uint32_t ns) {
        const double x = bi[col] * nb[ns];
        acc += x;
        mi[col] += av * x;
      });
      cb[mask] = acc;
      s += av * acc;
    }
    if (!(s > 0.0) || !std::isfinite(s)) throw Error("banded permanent: backward pass underflowed");
    const double inv = 1.0 / s;
    for (std::size_t q = bw.first[i]; q < bw.first[i + 1]; ++q) cb[bw.active[q]] *= inv;
    for (std::size_t q = bw.first[i + 1]; q < bw.first[i + 2]; ++q) nb[bw.active[q]] = 0.0;
    std::swap(cb, nb);
  }
  if (!normalise_rows(marg, k)) throw Error("banded permanent: zero marginals");
  return log_scale;
}

// Sinkhorn balancing of the band |i - j| <= w of a log matrix (rows, then columns, to
// log-sum 0; `iterations` sweeps); returns the total subtracted, -inf when a row or column
// has no weight in the band. Scaling rows and columns changes neither the marginals nor
// (up to the returned constant) the banded permanent, but it keeps the linear dynamic
// program's states within a few orders of magnitude of each other.
double balance_band(double* la, int k, int w, int iterations) {
  double total = 0.0;
  for (int it = 0; it < iterations; ++it) {
    for (int pass = 0; pass < 2; ++pass)
      for (int i = 0; i < k; ++i) {
        LogSumExp s;
        const int lo = std::max(0, i - w), hi = std::min(k - 1, i + w);
        for (int j = lo; j <= hi; ++j) s.add(pass == 0 ? la[i * k + j] : la[j * k + i]);
        const double v = s.value();
        if (!(v > -kInf)) return -kInf;
        for (int j = lo; j <= hi; ++j) (pass == 0 ? la[i * k + j] : la[j * k + i]) -= v;
        total += v;
      }
  }
  return total;
}

// log of the banded permanent of exp(la) (k x k, w < k), balanced first; tmp and bm are
// scratch. Falls back to a fully converged balancing if the linear recursion underflows.
double banded_log_value(const double* la, int k, int w, std::vector<double>& tmp,
                        std::vector<double>& bm, BandedWork& bw, double* marg) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    tmp.assign(la, la + static_cast<std::size_t>(k) * k);
    const double sc = balance_band(tmp.data(), k, w, attempt == 0 ? 3 : 200);
    if (!(sc > -kInf)) return -kInf;
    bm.resize(tmp.size());
    for (std::size_t i = 0; i < tmp.size(); ++i) bm[i] = std::exp(tmp[i]);
    try {
      const double v = log_banded_permanent(bm.data(), k, w, bw, marg);
      if (v > -kInf || attempt == 1) return sc + v;
    } catch (const Error&) {
      if (attempt == 1) throw;
    }
  }
  return -kInf;
}

}  // namespace detail

using detail::banded_log_value;
using detail::BandedWork;
using detail::kInf;
using detail::kMaxExactPermanent;
using detail::log_bethe_scaled;
using detail::log_permanent_scaled;
using detail::permanent_marginals;
using detail::scale_log_matrix;

double log_permanent(const double* log_a, int k) {
  if (k < 1 || k > kMaxExactPermanent)
    throw InvalidArgument("log_permanent: k must be in [1, " + std::to_string(kMaxExactPermanent) +
                          "], got " + std::to_string(k));
  std::vector<double> la(log_a, log_a + static_cast<std::size_t>(k) * k), dp, a;
  const double s = scale_log_matrix(la.data(), k);
  if (!(s > -kInf)) return -kInf;
  return s + log_permanent_scaled(la.data(), k, dp, a);
}

double log_bethe_permanent(const double* log_a, int k, int max_iterations, double tolerance) {
  if (k < 1) throw InvalidArgument("log_bethe_permanent: k must be >= 1");
  std::vector<double> la(log_a, log_a + static_cast<std::size_t>(k) * k), buf;
  std::vector<double> gamma(la.size(), 1.0);
  const double s = scale_log_matrix(la.data(), k);
  if (!(s > -kInf)) return -kInf;
  return s + log_bethe_scaled(la.data(), k, max_iterations, tolerance, buf, gamma.data());
}

double log_banded_permanent(const double* log_a, int k, int w, double* marginals) {
  if (k < 1) throw InvalidArgument("log_banded_permanent: k must be >= 1");
  if (w < 0 || w > 12) throw InvalidArgument("log_banded_permanent: w must be in [0, 12]");
  w = std::min(w, k - 1);
  std::vector<double> la(log_a, log_a + static_cast<std::size_t>(k) * k);
  const double s = scale_log_matrix(la.data(), k);
  if (!(s > -kInf)) {
    if (marginals) throw InvalidArgument("log_banded_permanent: the permanent is 0 (a zero row)");
    return -kInf;
  }
  std::vector<double> tmp, bm;
  BandedWork bw;
  const double v = banded_log_value(la.data(), k, w, tmp, bm, bw, marginals);
  if (marginals && !(v > -kInf))
    throw InvalidArgument("log_banded_permanent: no permutation within the band has weight");
  return s + v;
}

double log_permanent_marginals(const double* log_a, int k, double* marginals) {
  if (k < 1 || k > kMaxExactPermanent)
    throw InvalidArgument("log_permanent_marginals: k must be in [1, " +
                          std::to_string(kMaxExactPermanent) + "], got " + std::to_string(k));
  std::vector<double> la(log_a, log_a + static_cast<std::size_t>(k) * k), f, g, a;
  const double s = scale_log_matrix(la.data(), k);
  if (!(s > -kInf)) throw InvalidArgument("log_permanent_marginals: the permanent is 0");
  const double v = s + log_permanent_scaled(la.data(), k, f, a);
  permanent_marginals(la.data(), k, f, g, a, marginals);
  return v;
}

}  // namespace matchar::nmr
