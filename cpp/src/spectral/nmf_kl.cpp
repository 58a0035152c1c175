// NMF with the generalised Kullback-Leibler (Poisson) loss: multiplicative updates for
// dense and CSR counts.
#include "matchar/spectral/nmf.hpp"
#include "nmf_common.hpp"

namespace matchar::spectral {

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

#define MATCHAR_KL_DENSE(TX, T)                                                                    \
  template double kl_update<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, ConstMatrixView<T>,    \
                                   Masks, bool, bool, T*, T*);                                     \
  template double kl_update_stats<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>,                  \
                                         ConstMatrixView<T>, Masks, bool, T*, double*, double*);   \
  template void kl_update_maps<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, ConstMatrixView<T>, \
                                      int, T*);
#define MATCHAR_KL_CSR(TX, TI, T)                                                          \
  template double kl_update_csr<TX, TI, T>(CsrView<TX, TI>, ConstMatrixView<T>,            \
                                           ConstMatrixView<T>, Masks, bool, bool, T*, T*); \
  template double kl_update_stats_csr<TX, TI, T>(                                          \
      CsrView<TX, TI>, ConstMatrixView<T>, ConstMatrixView<T>, Masks, bool, T*, double*, double*);
MATCHAR_NMF_INSTANTIATE(MATCHAR_KL_DENSE, MATCHAR_KL_CSR)

}  // namespace matchar::spectral
