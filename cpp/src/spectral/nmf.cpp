#include "matchar/spectral/nmf.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "blocks.hpp"
#include "nmf_blocked.hpp"
#include "row_source.hpp"

namespace matchar::spectral {
namespace {

using detail::DevianceBlockArgs;
using detail::dispatch_small_k;
using detail::HalsBlockArgs;
using detail::included;
using detail::KlBlockArgs;
using detail::load_row;
using detail::row_source;
using detail::RowMat;
using detail::RowSource;

constexpr double kTiny = std::numeric_limits<double>::epsilon();  // H below this -> 0

// Natural logarithm of a positive normal double, branch-free so that the loss loops
// vectorise (libm's log does not): exponent from the bits, mantissa m in
// [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)) by its series to s^15.
// Relative error < 1e-13 over the normal range; the divergence is a sum of these.
inline double fast_log(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  std::int64_t e = static_cast<std::int64_t>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  double m;
  std::memcpy(&m, &bits, sizeof m);
  const double high = static_cast<double>(m > 1.4142135623730951);
  m *= 1.0 - 0.5 * high;
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  const double p =
      s2 * (1.0 / 3 +
            s2 * (1.0 / 5 +
                  s2 * (1.0 / 7 +
                        s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13 + s2 * (1.0 / 15)))))));
  return (static_cast<double>(e) + high) * 0.6931471805599453 + 2.0 * s * (1.0 + p);
}

// The same in single precision (relative error < 1e-6), for float factors: twice the
// lanes, and 32-bit integer operations that every vector ISA has.
inline float fast_logf(float v) {
  std::int32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  std::int32_t e = ((bits >> 23) & 0xff) - 127;
  bits = (bits & 0x007FFFFF) | 0x3F800000;
  float m;
  std::memcpy(&m, &bits, sizeof m);
  const float high = static_cast<float>(m > 1.41421356f);  // arithmetic, not a branch
  m *= 1.0f - 0.5f * high;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float p = s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  return (static_cast<float>(e) + high) * 0.6931471805599453f + 2.0f * s * (1.0f + p);
}

// sum_c x_c log(r_c) over entries with r_c > 0 (r = x / wh, 0 where not counted).
inline double sum_x_log_ratio(const double* x, const double* r, index_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t c = 0; c < n; ++c) {
    const double rc = r[c] + static_cast<double>(r[c] <= 1e-300);
    s += x[c] * fast_log(rc);
  }
  return s;
}
inline double sum_x_log_ratio(const float* x, const float* r, index_t n) {
  // Partial sums in float over short runs, then float64: exact enough, fully vectorised.
  double total = 0.0;
  constexpr index_t kRun = 256;
  for (index_t c0 = 0; c0 < n; c0 += kRun) {
    const index_t c1 = std::min(n, c0 + kRun);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (index_t c = c0; c < c1; ++c) {
      // r >= 0; entries with r == 0 are not counted: log(1) = 0 there.
      const float rc = r[c] + static_cast<float>(r[c] <= 1e-37f);
      s += x[c] * fast_logf(rc);
    }
    total += static_cast<double>(s);
  }
  return total;
}

// Per-thread float64 accumulators, reduced in thread order (deterministic).
struct Accumulators {
  int n_threads;
  index_t size;
  std::vector<double> data;
  Accumulators(int threads, index_t n, const char* what) : n_threads(threads), size(n) {
    check_allocation(static_cast<std::size_t>(threads) * static_cast<std::size_t>(n),
                     sizeof(double), what);
    data.assign(static_cast<std::size_t>(threads) * static_cast<std::size_t>(n), 0.0);
  }
  double* of(int tid) { return data.data() + static_cast<std::size_t>(tid) * size; }
  double sum(index_t j) const {
    double s = 0.0;
    for (int t = 0; t < n_threads; ++t) s += data[static_cast<std::size_t>(t) * size + j];
    return s;
  }
};

// Sum over included channels of each row of H (K).
template <class T>
std::vector<double> masked_row_sums(ConstMatrixView<T> H, const std::uint8_t* channels) {
  std::vector<double> s(static_cast<std::size_t>(H.rows), 0.0);
  for (index_t k = 0; k < H.rows; ++k)
    for (index_t c = 0; c < H.cols; ++c)
      if (included(channels, c)) s[k] += H(k, c);
  return s;
}

// H_out = H * numerator / denominator (per component), tiny values -> 0; numerator(k, c)
// is the thread-ordered sum of the accumulators at k * C + c.
template <class T>
void finish_kl_h(ConstMatrixView<T> H, const Accumulators& acc, const std::vector<double>& wsum,
                 T* H_out) {
  const index_t K = H.rows, C = H.cols;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (K * C > 65536)
  for (index_t c = 0; c < C; ++c) {
    for (index_t k = 0; k < K; ++k) {
      const double den = wsum[k] == 0.0 ? kEpsilon : wsum[k];
      // The quotient is rounded to T before the product, as in the NumPy update.
      const T delta = static_cast<T>(acc.sum(k * C + c) / den);
      T h = H(k, c) * delta;
      if (h < static_cast<T>(kTiny)) h = T(0);
      H_out[k * C + c] = h;
    }
  }
}

// Cyclic coordinate descent on the columns of one row w (K) of a factor:
// minimises 0.5 w^T G w - b^T w over w >= 0, one coordinate at a time, in order.
inline bool cd_sweep(double* w, const double* G, const double* b, index_t K) {
  bool changed = false;
  for (index_t k = 0; k < K; ++k) {
    double grad = -b[k];
    for (index_t r = 0; r < K; ++r) grad += G[k * K + r] * w[r];
    const double hess = G[k * K + k];
    if (hess != 0.0) {
      const double v = std::max(w[k] - grad / hess, 0.0);
      changed = changed || v != w[k];
      w[k] = v;
    }
  }
  return changed;
}

using detail::cd_sweeps;

// The H half of a HALS sweep and the loss of the new state:
// xtw(k, c) = sum_i W_ik X_ic over included pixels, WtW (K x K), sumsq = sum X^2 over
// included entries.
template <class T, class XtW>
double finish_hals(ConstMatrixView<T> H, Masks masks, bool update_H, XtW xtw,
                   const std::vector<double>& WtW, double sumsq, T* H_out, int sweeps) {
  const index_t K = H.rows, C = H.cols;
  std::vector<double> cross(static_cast<std::size_t>(C), 0.0);
  std::vector<double> hht_parts;
  const int nt = num_threads();
  hht_parts.assign(static_cast<std::size_t>(nt) * K * K, 0.0);
  struct Row {
    int tid;
    std::vector<double> h, b;
  };
  matchar::detail::parallel_for(
      C, K * C > 65536 ? nt : 1, matchar::detail::Schedule::Static, 1,
      [&] { return Row{omp_get_thread_num(), std::vector<double>(K), std::vector<double>(K)}; },
      [&](index_t c, Row& row) {
        double* h = row.h.data();
        double* b = row.b.data();
        double* hht = hht_parts.data() + static_cast<std::size_t>(row.tid) * K * K;
        for (index_t k = 0; k < K; ++k) {
          h[k] = H(k, c);
          b[k] = xtw(k, c);
        }
        if (update_H) {
          cd_sweeps(h, WtW.data(), b, K, sweeps);
          for (index_t k = 0; k < K; ++k) {
            H_out[k * C + c] = static_cast<T>(h[k]);
            h[k] = static_cast<double>(H_out[k * C + c]);
          }
        }
        if (included(masks.channels, c)) {
          double x = 0.0;
          for (index_t k = 0; k < K; ++k) x += h[k] * b[k];
          cross[c] = x;
          for (index_t k = 0; k < K; ++k)
            for (index_t l = 0; l < K; ++l) hht[k * K + l] += h[k] * h[l];
        }
      });
  double cross_sum = 0.0;
  for (index_t c = 0; c < C; ++c) cross_sum += cross[c];
  double quad = 0.0;
  for (index_t k = 0; k < K; ++k)
    for (index_t l = 0; l < K; ++l) {
      double hkl = 0.0;
      for (int t = 0; t < nt; ++t)
        hkl += hht_parts[static_cast<std::size_t>(t) * K * K + k * K + l];
      quad += WtW[k * K + l] * hkl;
    }
  return std::max(0.5 * (sumsq - 2.0 * cross_sum + quad), 0.0);
}

}  // namespace

// `sweeps` sweeps, or fewer once one leaves w unchanged (every later one would too: the
// result is the same, and a huge `sweeps` cannot hang a pass).
void detail::cd_sweeps(double* w, const double* G, const double* b, index_t K, int sweeps) {
  for (int sw = 0; sw < sweeps; ++sw)
    if (!cd_sweep(w, G, b, K)) break;
}

// ---------------------------------------------------------------------------
// Row kernels of the dense passes: everything about one pixel stays in L1 (its spectrum,
// its W H and ratios, C elements each), H (K x C) in L1/L2. Vectorised over channels.
// ---------------------------------------------------------------------------
namespace {

// wh = w^T H for one pixel (H row-major K x C).
template <class T>
void row_times_h(const T* __restrict w, const T* __restrict H, index_t K, index_t C,
                 T* __restrict wh) {
#pragma omp simd
  for (index_t c = 0; c < C; ++c) wh[c] = w[0] * H[c];
  for (index_t k = 1; k < K; ++k) {
    const T wk = w[k];
    const T* __restrict h = H + k * C;
#pragma omp simd
    for (index_t c = 0; c < C; ++c) wh[c] += wk * h[c];
  }
}

// The same with K known at compile time: one pass over the channels, the K products
// of each channel summed in registers (no read-modify-write of wh per component).
template <int KK, class T>
void row_times_h_fixed(const T* __restrict w, const T* __restrict H, index_t, index_t C,
                       T* __restrict wh) {
  T wk[KK];
  for (int k = 0; k < KK; ++k) wk[k] = w[k];
#pragma omp simd
  for (index_t c = 0; c < C; ++c) {
    T s = wk[0] * H[c];
    for (int k = 1; k < KK; ++k) s += wk[k] * H[k * C + c];
    wh[c] = s;
  }
}

// out[k] = sum_c r[c] H[k, c] for every component k.
template <class T>
void row_dots(const T* __restrict r, const T* __restrict H, index_t K, index_t C,
              double* __restrict out) {
  for (index_t k = 0; k < K; ++k) {
    const T* __restrict h = H + k * C;
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (index_t c = 0; c < C; ++c) s += r[c] * h[c];
    out[k] = static_cast<double>(s);
  }
}

// The same in one pass: K x 16 partial sums (vector registers), reduced at the end.
template <int KK, class T>
void row_dots_fixed(const T* __restrict r, const T* __restrict H, index_t, index_t C,
                    double* __restrict out) {
  constexpr int kLanes = 16;
  T acc[KK][kLanes] = {};
  index_t c0 = 0;
  for (; c0 + kLanes <= C; c0 += kLanes) {
    for (int k = 0; k < KK; ++k) {
      const T* __restrict h = H + k * C + c0;
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) acc[k][j] += r[c0 + j] * h[j];
    }
  }
  for (int k = 0; k < KK; ++k) {
    T s = T(0);
    for (int j = 0; j < kLanes; ++j) s += acc[k][j];
    for (index_t c = c0; c < C; ++c) s += r[c] * H[k * C + c];
    out[k] = static_cast<double>(s);
  }
}

template <class T>
struct RowOps {
  void (*times_h)(const T*, const T*, index_t, index_t, T*);
  void (*dots)(const T*, const T*, index_t, index_t, double*);
};

template <class T>
RowOps<T> row_ops(index_t K) {
  RowOps<T> ops{row_times_h<T>, row_dots<T>};
  dispatch_small_k(K, [&](auto k) {
    constexpr int KK = decltype(k)::value;
    ops = {row_times_h_fixed<KK, T>, row_dots_fixed<KK, T>};
  });
  return ops;
}

template <class T>
inline double dot(const T* __restrict a, const T* __restrict b, index_t n) {
  T s = T(0);
#pragma omp simd reduction(+ : s)
  for (index_t c = 0; c < n; ++c) s += a[c] * b[c];
  return static_cast<double>(s);
}

// r = x / max(wh, eps) where x > 0 and the channel is included, else 0 (in place in wh).
template <class T>
inline void ratio(const T* __restrict x, T* __restrict wh, const std::uint8_t* channels,
                  index_t C) {
  const T eps = static_cast<T>(kEpsilon);
  if (channels == nullptr) {
#pragma omp simd
    for (index_t c = 0; c < C; ++c) wh[c] = x[c] > T(0) ? x[c] / std::max(wh[c], eps) : T(0);
  } else {
#pragma omp simd
    for (index_t c = 0; c < C; ++c)
      wh[c] = (x[c] > T(0)) & (channels[c] != 0) ? x[c] / std::max(wh[c], eps) : T(0);
  }
}

// sum_c [x log(r) - x] over the entries where r > 0 (the counted ones).
template <class T>
inline double kl_row_terms(const T* __restrict x, const T* __restrict r, index_t C) {
  double s = sum_x_log_ratio(x, r, C);
  double counted = 0.0;
#pragma omp simd reduction(+ : counted)
  for (index_t c = 0; c < C; ++c) counted += r[c] > T(0) ? static_cast<double>(x[c]) : 0.0;
  return s - counted;
}

}  // namespace

// ---------------------------------------------------------------------------
// KL multiplicative updates, dense X
// ---------------------------------------------------------------------------
namespace {
// kl_update / kl_update_stats: with H_out the H update is applied, with numerator_out
// and colsum_out the statistics are returned instead (update_H = either).
template <class TX, class T>
double kl_pass(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
               bool update_H, bool with_loss, T* W_out, T* H_out, double* numerator_out,
               double* colsum_out) {
  const index_t N = X.rows, C = X.cols, K = W.cols;

  const RowMat<T> Hm = detail::to_matrix(H);
  const T* Hp = Hm.data();
  const RowOps<T> ops = row_ops<T>(K);
  const std::vector<double> hsum = masked_row_sums(H, masks.channels);
  std::vector<T> den(K);
  for (index_t k = 0; k < K; ++k) den[k] = static_cast<T>(hsum[k] == 0.0 ? kEpsilon : hsum[k]);

  constexpr index_t B = 64;  // rows per block: H accumulated in T over a block, then float64
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Accumulators acc(nt, update_H ? K * C : 0, "KL update accumulators");
  Accumulators wsum_new(nt, K, "KL update accumulators");
  Accumulators wsum_old(nt, K, "KL update accumulators");
  std::vector<double> loss_part(static_cast<std::size_t>(nt), 0.0);

  const KlBlockArgs<T> blocked{row_source<T>(X),
                               W,
                               H,
                               masks,
                               update_H,
                               with_loss,
                               W_out,
                               den.data(),
                               nt,
                               acc.data.data(),
                               acc.size,
                               wsum_new.data.data(),
                               wsum_old.data.data(),
                               K,
                               loss_part.data()};
  if (!detail::blocked_kernels_for<T>().kl(blocked))
    detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
      thread_local std::vector<T> x, r, accb, w, wn;
      thread_local std::vector<double> num;
      num.resize(K);
      x.resize(C);
      r.resize(C);
      w.resize(K);
      wn.resize(K);
      if (update_H) accb.assign(static_cast<std::size_t>(K * C), T(0));
      double* wo = wsum_old.of(tid);
      double* ws = wsum_new.of(tid);
      double loss = 0.0;
      const index_t i0 = b * B, i1 = std::min(N, i0 + B);
      for (index_t i = i0; i < i1; ++i) {
        const bool pix = included(masks.pixels, i);
        load_row(X, i, x.data());
        for (index_t k = 0; k < K; ++k) w[k] = W(i, k);
        ops.times_h(w.data(), Hp, K, C, r.data());
        ratio(x.data(), r.data(), masks.channels, C);
        if (pix && with_loss) {
          loss += kl_row_terms(x.data(), r.data(), C);
          for (index_t k = 0; k < K; ++k) wo[k] += w[k];
        }
        ops.dots(r.data(), Hp, K, C, num.data());
        for (index_t k = 0; k < K; ++k) {
          const T delta = static_cast<T>(num[k]) / den[k];
          wn[k] = w[k] * delta;
          W_out[i * K + k] = wn[k];
        }
        if (!update_H || !pix) continue;
        // The H numerator W_new^T (X / W_new H), from the row still in cache.
        ops.times_h(wn.data(), Hp, K, C, r.data());
        ratio(x.data(), r.data(), static_cast<const std::uint8_t*>(nullptr), C);
        for (index_t k = 0; k < K; ++k) {
          ws[k] += wn[k];
          const T wk = wn[k];
          T* __restrict a = accb.data() + k * C;
          const T* __restrict rr = r.data();
#pragma omp simd
          for (index_t c = 0; c < C; ++c) a[c] += wk * rr[c];
        }
      }
      loss_part[tid] += loss;
      if (update_H) {
        double* a = acc.of(tid);
        for (index_t j = 0; j < K * C; ++j) a[j] += static_cast<double>(accb[j]);
      }
    });

  if (update_H) {
    std::vector<double> wsum(K);
    for (index_t k = 0; k < K; ++k) wsum[k] = wsum_new.sum(k);
    if (H_out != nullptr) finish_kl_h(H, acc, wsum, H_out);
    if (numerator_out != nullptr) {
      for (index_t j = 0; j < K * C; ++j) numerator_out[j] = acc.sum(j);
      for (index_t k = 0; k < K; ++k) colsum_out[k] = wsum[k];
    }
  }
  if (!with_loss) return 0.0;
  double loss = 0.0;
  for (int t = 0; t < nt; ++t) loss += loss_part[t];
  for (index_t k = 0; k < K; ++k) loss += wsum_old.sum(k) * hsum[k];  // sum of W H
  return loss;
}
}  // namespace

template <class TX, class T>
double kl_update(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                 bool update_H, bool with_loss, T* W_out, T* H_out) {
  detail::check_factors(X.rows, X.cols, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || (update_H && H_out == nullptr))
    throw InvalidArgument("output buffers must not be null");
  return kl_pass(X, W, H, masks, update_H, with_loss, W_out, update_H ? H_out : nullptr, nullptr,
                 nullptr);
}

template <class TX, class T>
void kl_update_maps(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, int n_iter,
                    T* W_out) {
  detail::check_factors(X.rows, X.cols, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr) throw InvalidArgument("output buffers must not be null");
  if (n_iter < 1) throw InvalidArgument("n_iter must be >= 1");
  const index_t N = X.rows, C = X.cols, K = W.cols;
  const RowMat<T> Hm = detail::to_matrix(H);
  const T* Hp = Hm.data();
  const RowOps<T> ops = row_ops<T>(K);
  const std::vector<double> hsum = masked_row_sums(H, nullptr);
  std::vector<T> den(K);
  for (index_t k = 0; k < K; ++k) den[k] = static_cast<T>(hsum[k] == 0.0 ? kEpsilon : hsum[k]);
  constexpr index_t B = 64;
  const index_t n_blocks = (N + B - 1) / B;
  detail::for_blocks(n_blocks, num_threads(), [&](index_t b, int) {
    thread_local std::vector<T> x, r, w;
    thread_local std::vector<double> num;
    num.resize(K);
    x.resize(C);
    r.resize(C);
    w.resize(K);
    const index_t i0 = b * B, i1 = std::min(N, i0 + B);
    for (index_t i = i0; i < i1; ++i) {
      load_row(X, i, x.data());
      for (index_t k = 0; k < K; ++k) w[k] = W(i, k);
      for (int it = 0; it < n_iter; ++it) {  // the arithmetic of kl_pass, row by row
        ops.times_h(w.data(), Hp, K, C, r.data());
        ratio(x.data(), r.data(), static_cast<const std::uint8_t*>(nullptr), C);
        ops.dots(r.data(), Hp, K, C, num.data());
        for (index_t k = 0; k < K; ++k) w[k] = w[k] * (static_cast<T>(num[k]) / den[k]);
      }
      for (index_t k = 0; k < K; ++k) W_out[i * K + k] = w[k];
    }
  });
}

template <class TX, class T>
double kl_update_stats(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                       Masks masks, bool with_loss, T* W_out, double* numerator, double* colsum) {
  detail::check_factors(X.rows, X.cols, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || numerator == nullptr || colsum == nullptr)
    throw InvalidArgument("output buffers must not be null");
  return kl_pass(X, W, H, masks, true, with_loss, W_out, static_cast<T*>(nullptr), numerator,
                 colsum);
}

// ---------------------------------------------------------------------------
// KL multiplicative updates, CSR X: work proportional to the non-zero counts
// ---------------------------------------------------------------------------
namespace {
template <class TX, class TI, class T>
double kl_pass_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                   bool update_H, bool with_loss, T* W_out, T* H_out, double* numerator_out,
                   double* colsum_out) {
  const index_t N = X.rows, C = X.cols, K = W.cols;

  const RowMat<double> Ht = detail::to_matrix<T, double>(H).transpose();  // C x K
  const std::vector<double> hsum = masked_row_sums(H, masks.channels);
  std::vector<double> den(K);
  for (index_t k = 0; k < K; ++k) den[k] = hsum[k] == 0.0 ? kEpsilon : hsum[k];

  constexpr index_t B = 256;
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Accumulators acc(nt, update_H ? C * K : 0, "KL update accumulators");  // C x K per thread
  Accumulators wsum_new(nt, K, "KL update accumulators");
  Accumulators wsum_old(nt, K, "KL update accumulators");
  std::vector<double> loss_part(static_cast<std::size_t>(nt), 0.0);

  detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
    std::vector<double> w(K), num(K);
    const index_t i0 = b * B, i1 = std::min(N, i0 + B);
    double loss = 0.0;
    for (index_t i = i0; i < i1; ++i) {
      const bool pix = included(masks.pixels, i);
      for (index_t k = 0; k < K; ++k) {
        w[k] = W(i, k);
        num[k] = 0.0;
      }
      if (pix && with_loss)
        for (index_t k = 0; k < K; ++k) wsum_old.of(tid)[k] += w[k];
      const auto p0 = static_cast<index_t>(X.indptr[i]), p1 = static_cast<index_t>(X.indptr[i + 1]);
      for (index_t p = p0; p < p1; ++p) {
        const double x = static_cast<double>(X.data[p]);
        const auto c = static_cast<index_t>(X.indices[p]);
        if (!(x > 0.0) || !included(masks.channels, c)) continue;
        const double* h = Ht.data() + c * K;
        double wh = 0.0;
        for (index_t k = 0; k < K; ++k) wh += w[k] * h[k];
        wh = std::max(wh, kEpsilon);
        if (pix && with_loss) loss += x * std::log(x / wh) - x;
        const double r = x / wh;
        for (index_t k = 0; k < K; ++k) num[k] += r * h[k];
      }
      for (index_t k = 0; k < K; ++k) {
        const T wk = static_cast<T>(w[k] * (num[k] / den[k]));
        W_out[i * K + k] = wk;
        w[k] = static_cast<double>(wk);
      }
      if (!update_H || !pix) continue;
      double* ws = wsum_new.of(tid);
      for (index_t k = 0; k < K; ++k) ws[k] += w[k];
      double* a = acc.of(tid);
      for (index_t p = p0; p < p1; ++p) {
        const double x = static_cast<double>(X.data[p]);
        if (!(x > 0.0)) continue;
        const auto c = static_cast<index_t>(X.indices[p]);
        const double* h = Ht.data() + c * K;
        double wh = 0.0;
        for (index_t k = 0; k < K; ++k) wh += w[k] * h[k];
        const double r = x / std::max(wh, kEpsilon);
        for (index_t k = 0; k < K; ++k) a[c * K + k] += r * w[k];
      }
    }
    loss_part[tid] += loss;
  });

  if (update_H) {
    std::vector<double> wsum(K);
    for (index_t k = 0; k < K; ++k) wsum[k] = wsum_new.sum(k);
    if (H_out != nullptr) {
#pragma omp parallel for schedule(static) num_threads(nt) if (K * C > 65536)
      for (index_t c = 0; c < C; ++c)
        for (index_t k = 0; k < K; ++k) {
          const double d = wsum[k] == 0.0 ? kEpsilon : wsum[k];
          T h = static_cast<T>(H(k, c) * (acc.sum(c * K + k) / d));
          if (h < static_cast<T>(kTiny)) h = T(0);
          H_out[k * C + c] = h;
        }
    }
    if (numerator_out != nullptr) {
      for (index_t c = 0; c < C; ++c)
        for (index_t k = 0; k < K; ++k) numerator_out[k * C + c] = acc.sum(c * K + k);
      for (index_t k = 0; k < K; ++k) colsum_out[k] = wsum[k];
    }
  }
  if (!with_loss) return 0.0;
  double loss = 0.0;
  for (int t = 0; t < nt; ++t) loss += loss_part[t];
  for (index_t k = 0; k < K; ++k) loss += wsum_old.sum(k) * hsum[k];
  return loss;
}
}  // namespace

template <class TX, class TI, class T>
double kl_update_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                     bool update_H, bool with_loss, T* W_out, T* H_out) {
  detail::check_factors(X.rows, X.cols, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || (update_H && H_out == nullptr))
    throw InvalidArgument("output buffers must not be null");
  return kl_pass_csr(X, W, H, masks, update_H, with_loss, W_out, update_H ? H_out : nullptr,
                     nullptr, nullptr);
}

template <class TX, class TI, class T>
double kl_update_stats_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                           Masks masks, bool with_loss, T* W_out, double* numerator,
                           double* colsum) {
  detail::check_factors(X.rows, X.cols, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || numerator == nullptr || colsum == nullptr)
    throw InvalidArgument("output buffers must not be null");
  return kl_pass_csr(X, W, H, masks, true, with_loss, W_out, static_cast<T*>(nullptr), numerator,
                     colsum);
}

// ---------------------------------------------------------------------------
// Frobenius HALS, dense X
// ---------------------------------------------------------------------------
template <class TX, class T>
double hals_update_stats(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                         Masks masks, int sweeps, T* W_out, double* WtX, double* WtW_out) {
  const index_t N = X.rows, C = X.cols, K = W.cols;
  detail::check_factors(N, C, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || WtX == nullptr || WtW_out == nullptr)
    throw InvalidArgument("output buffers must not be null");
  if (sweeps < 1) throw InvalidArgument("sweeps must be >= 1");

  RowMat<T> Hm = detail::to_matrix(H);  // excluded channels zeroed: they do not drive W
  for (index_t c = 0; c < C; ++c)
    if (!included(masks.channels, c)) Hm.col(c).setZero();
  const RowMat<double> Hd = Hm.template cast<double>();
  const RowMat<double> HHt = Hd * Hd.transpose();
  const T* Hp = Hm.data();
  const RowOps<T> ops = row_ops<T>(K);

  constexpr index_t B = 64;
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Accumulators acc(nt, K * C, "HALS accumulators");
  Accumulators wtw(nt, K * K, "HALS accumulators");
  std::vector<double> sumsq_part(static_cast<std::size_t>(nt), 0.0);

  const HalsBlockArgs<T> blocked{row_source<T>(X),
                                 W,
                                 H,
                                 masks,
                                 HHt.data(),
                                 sweeps,
                                 W_out,
                                 nt,
                                 acc.data.data(),
                                 acc.size,
                                 wtw.data.data(),
                                 wtw.size,
                                 sumsq_part.data()};
  if (!detail::blocked_kernels_for<T>().hals(blocked))
    detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
      thread_local std::vector<T> x, xm, accb;
      x.resize(C);
      accb.assign(static_cast<std::size_t>(K * C), T(0));
      std::vector<double> w(K), xh(K);
      double* g = wtw.of(tid);
      double sumsq = 0.0;
      const index_t i0 = b * B, i1 = std::min(N, i0 + B);
      for (index_t i = i0; i < i1; ++i) {
        load_row(X, i, x.data());
        for (index_t k = 0; k < K; ++k) w[k] = W(i, k);
        ops.dots(x.data(), Hp, K, C, xh.data());
        cd_sweeps(w.data(), HHt.data(), xh.data(), K, sweeps);
        for (index_t k = 0; k < K; ++k) {
          W_out[i * K + k] = static_cast<T>(w[k]);
          w[k] = static_cast<double>(W_out[i * K + k]);
        }
        if (!included(masks.pixels, i)) continue;  // excluded pixels do not drive H
        for (index_t k = 0; k < K; ++k)
          for (index_t l = 0; l < K; ++l) g[k * K + l] += w[k] * w[l];
        if (masks.channels == nullptr) {
          sumsq += dot(x.data(), x.data(), C);
        } else {
          for (index_t c = 0; c < C; ++c)
            if (masks.channels[c]) sumsq += static_cast<double>(x[c]) * x[c];
        }
        for (index_t k = 0; k < K; ++k) {
          const T wk = static_cast<T>(w[k]);
          T* __restrict a = accb.data() + k * C;
          const T* __restrict xr = x.data();
#pragma omp simd
          for (index_t c = 0; c < C; ++c) a[c] += wk * xr[c];
        }
      }
      sumsq_part[tid] += sumsq;
      double* a = acc.of(tid);
      for (index_t j = 0; j < K * C; ++j) a[j] += static_cast<double>(accb[j]);
    });

  for (index_t j = 0; j < K * C; ++j) WtX[j] = acc.sum(j);
  for (index_t j = 0; j < K * K; ++j) WtW_out[j] = wtw.sum(j);
  double sumsq = 0.0;
  for (int t = 0; t < nt; ++t) sumsq += sumsq_part[t];
  return sumsq;
}

template <class TX, class T>
double hals_update(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                   bool update_H, T* W_out, T* H_out, int sweeps) {
  const index_t C = X.cols, K = W.cols;
  if (update_H && H_out == nullptr) throw InvalidArgument("output buffers must not be null");
  std::vector<double> xtw(static_cast<std::size_t>(K * C)), WtW(static_cast<std::size_t>(K * K));
  const double sumsq = hals_update_stats(X, W, H, masks, sweeps, W_out, xtw.data(), WtW.data());
  return finish_hals(
      H, masks, update_H, [&](index_t k, index_t c) { return xtw[k * C + c]; }, WtW, sumsq, H_out,
      sweeps);
}

template <class TX, class TI, class T>
double hals_update_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H, Masks masks,
                       bool update_H, T* W_out, T* H_out, int sweeps) {
  const index_t N = X.rows, C = X.cols, K = W.cols;
  detail::check_factors(N, C, W.rows, W.cols, H.rows, H.cols);
  if (W_out == nullptr || (update_H && H_out == nullptr))
    throw InvalidArgument("output buffers must not be null");
  if (sweeps < 1) throw InvalidArgument("sweeps must be >= 1");

  RowMat<double> Ht = detail::to_matrix<T, double>(H).transpose();  // C x K
  for (index_t c = 0; c < C; ++c)
    if (!included(masks.channels, c)) Ht.row(c).setZero();
  const RowMat<double> HHt = Ht.transpose() * Ht;

  constexpr index_t B = 256;
  const index_t n_blocks = (N + B - 1) / B;
  const int nt = num_threads();
  Accumulators acc(nt, C * K, "HALS accumulators");  // C x K per thread
  Accumulators wtw(nt, K * K, "HALS accumulators");
  std::vector<double> sumsq_part(static_cast<std::size_t>(nt), 0.0);

  detail::for_blocks(n_blocks, nt, [&](index_t b, int tid) {
    std::vector<double> w(K), xh(K);
    const index_t i0 = b * B, i1 = std::min(N, i0 + B);
    double* g = wtw.of(tid);
    double* a = acc.of(tid);
    double sumsq = 0.0;
    for (index_t i = i0; i < i1; ++i) {
      const auto p0 = static_cast<index_t>(X.indptr[i]), p1 = static_cast<index_t>(X.indptr[i + 1]);
      for (index_t k = 0; k < K; ++k) {
        w[k] = W(i, k);
        xh[k] = 0.0;
      }
      for (index_t p = p0; p < p1; ++p) {
        const double x = static_cast<double>(X.data[p]);
        const double* h = Ht.data() + static_cast<index_t>(X.indices[p]) * K;
        for (index_t k = 0; k < K; ++k) xh[k] += x * h[k];
      }
      cd_sweeps(w.data(), HHt.data(), xh.data(), K, sweeps);
      for (index_t k = 0; k < K; ++k) {
        W_out[i * K + k] = static_cast<T>(w[k]);
        w[k] = static_cast<double>(W_out[i * K + k]);
      }
      if (!included(masks.pixels, i)) continue;
      for (index_t k = 0; k < K; ++k)
        for (index_t l = 0; l < K; ++l) g[k * K + l] += w[k] * w[l];
      for (index_t p = p0; p < p1; ++p) {
        const double x = static_cast<double>(X.data[p]);
        const auto c = static_cast<index_t>(X.indices[p]);
        if (included(masks.channels, c)) sumsq += x * x;
        for (index_t k = 0; k < K; ++k) a[c * K + k] += x * w[k];
      }
    }
    sumsq_part[tid] += sumsq;
  });

  std::vector<double> xtw(static_cast<std::size_t>(K * C)), WtW(static_cast<std::size_t>(K * K));
  for (index_t j = 0; j < K * C; ++j) xtw[j] = acc.sum(j);
  for (index_t j = 0; j < K * K; ++j) WtW[j] = wtw.sum(j);
  double sumsq = 0.0;
  for (int t = 0; t < nt; ++t) sumsq += sumsq_part[t];
  return finish_hals(
      H, masks, update_H, [&](index_t k, index_t c) { return xtw[c * K + k]; }, WtW, sumsq, H_out,
      sweeps);
}

// ---------------------------------------------------------------------------
// Per-pixel Poisson deviance
// ---------------------------------------------------------------------------
namespace {
template <class T>
struct DevianceFactors {
  RowMat<double> Ht;         // C x K
  std::vector<double> hsum;  // K, over included channels
  explicit DevianceFactors(ConstMatrixView<T> H, const std::uint8_t* channels)
      : Ht(detail::to_matrix<T, double>(H).transpose()), hsum(masked_row_sums(H, channels)) {}
};
}  // namespace

template <class TX, class T>
void poisson_deviance(ConstMatrixView<TX> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                      Masks masks, double* out) {
  const index_t N = X.rows, C = X.cols, K = W.cols;
  detail::check_factors(N, C, W.rows, W.cols, H.rows, H.cols);
  const std::vector<double> hsum = masked_row_sums(H, masks.channels);
  // K <= kMaxSmallK: the blocked pass of the CPU's level
  const DevianceBlockArgs<T> blocked{row_source<T>(X), W,  H, masks.channels, hsum.data(),
                                     num_threads(),    out};
  if (detail::blocked_kernels_for<T>().deviance(blocked)) return;
  const RowMat<T> Hm = detail::to_matrix(H);
  constexpr index_t B = 64;
  detail::for_blocks((N + B - 1) / B, num_threads(), [&](index_t b, int) {
    thread_local std::vector<T> x, r, w;
    x.resize(C);
    r.resize(C);
    w.resize(K);
    for (index_t i = b * B; i < std::min(N, (b + 1) * B); ++i) {
      double dev = 0.0;
      for (index_t k = 0; k < K; ++k) {
        w[k] = W(i, k);
        dev += static_cast<double>(w[k]) * hsum[k];
      }
      load_row(X, i, x.data());
      row_ops<T>(K).times_h(w.data(), Hm.data(), K, C, r.data());
      ratio(x.data(), r.data(), masks.channels, C);
      out[i] = 2.0 * (dev + kl_row_terms(x.data(), r.data(), C));
    }
  });
}

template <class TX, class TI, class T>
void poisson_deviance_csr(CsrView<TX, TI> X, ConstMatrixView<T> W, ConstMatrixView<T> H,
                          Masks masks, double* out) {
  const index_t N = X.rows, C = X.cols, K = W.cols;
  detail::check_factors(N, C, W.rows, W.cols, H.rows, H.cols);
  const DevianceFactors<T> f(H, masks.channels);
  constexpr index_t B = 256;
  detail::for_blocks((N + B - 1) / B, num_threads(), [&](index_t b, int) {
    std::vector<double> w(K);
    for (index_t i = b * B; i < std::min(N, (b + 1) * B); ++i) {
      double dev = 0.0;
      for (index_t k = 0; k < K; ++k) {
        w[k] = W(i, k);
        dev += w[k] * f.hsum[k];
      }
      for (auto p = static_cast<index_t>(X.indptr[i]); p < static_cast<index_t>(X.indptr[i + 1]);
           ++p) {
        const double x = static_cast<double>(X.data[p]);
        const auto c = static_cast<index_t>(X.indices[p]);
        if (!(x > 0.0) || !included(masks.channels, c)) continue;
        const double* h = f.Ht.data() + c * K;
        double wh = 0.0;
        for (index_t k = 0; k < K; ++k) wh += w[k] * h[k];
        dev += x * std::log(x / std::max(wh, kEpsilon)) - x;
      }
      out[i] = 2.0 * dev;
    }
  });
}

// ---------------------------------------------------------------------------
// Explicit instantiations: X in {uint8, uint16, uint32, float, double} x factors in
// {float, double}; CSR data float/double with int32/int64 indices.
// ---------------------------------------------------------------------------
#define MATCHAR_NMF_DENSE(TX, T)                                                                   \
  template double kl_update<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, ConstMatrixView<T>,    \
                                   Masks, bool, bool, T*, T*);                                     \
  template double kl_update_stats<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>,                  \
                                         ConstMatrixView<T>, Masks, bool, T*, double*, double*);   \
  template void kl_update_maps<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, ConstMatrixView<T>, \
                                      int, T*);                                                    \
  template double hals_update<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, ConstMatrixView<T>,  \
                                     Masks, bool, T*, T*, int);                                    \
  template double hals_update_stats<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>,                \
                                           ConstMatrixView<T>, Masks, int, T*, double*, double*);  \
  template void poisson_deviance<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>,                   \
                                        ConstMatrixView<T>, Masks, double*);
#define MATCHAR_NMF_CSR(TX, TI, T)                                                                 \
  template double kl_update_csr<TX, TI, T>(CsrView<TX, TI>, ConstMatrixView<T>,                    \
                                           ConstMatrixView<T>, Masks, bool, bool, T*, T*);         \
  template double kl_update_stats_csr<TX, TI, T>(                                                  \
      CsrView<TX, TI>, ConstMatrixView<T>, ConstMatrixView<T>, Masks, bool, T*, double*, double*); \
  template double hals_update_csr<TX, TI, T>(CsrView<TX, TI>, ConstMatrixView<T>,                  \
                                             ConstMatrixView<T>, Masks, bool, T*, T*, int);        \
  template void poisson_deviance_csr<TX, TI, T>(CsrView<TX, TI>, ConstMatrixView<T>,               \
                                                ConstMatrixView<T>, Masks, double*);

#define MATCHAR_NMF_ALL_X(T)               \
  MATCHAR_NMF_DENSE(std::uint8_t, T)       \
  MATCHAR_NMF_DENSE(std::uint16_t, T)      \
  MATCHAR_NMF_DENSE(std::uint32_t, T)      \
  MATCHAR_NMF_DENSE(float, T)              \
  MATCHAR_NMF_DENSE(double, T)             \
  MATCHAR_NMF_CSR(float, std::int32_t, T)  \
  MATCHAR_NMF_CSR(float, std::int64_t, T)  \
  MATCHAR_NMF_CSR(double, std::int32_t, T) \
  MATCHAR_NMF_CSR(double, std::int64_t, T)

MATCHAR_NMF_ALL_X(float)
MATCHAR_NMF_ALL_X(double)

}  // namespace matchar::spectral
