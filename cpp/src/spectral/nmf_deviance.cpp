// The per-pixel Poisson deviance of an NMF state (the residual map of a KL fit), dense
// and CSR counts.
#include "matchar/spectral/nmf.hpp"
#include "nmf_common.hpp"

namespace matchar::spectral {

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

#define MATCHAR_DEVIANCE_DENSE(TX, T)                                            \
  template void poisson_deviance<TX, T>(ConstMatrixView<TX>, ConstMatrixView<T>, \
                                        ConstMatrixView<T>, Masks, double*);
#define MATCHAR_DEVIANCE_CSR(TX, TI, T)                                              \
  template void poisson_deviance_csr<TX, TI, T>(CsrView<TX, TI>, ConstMatrixView<T>, \
                                                ConstMatrixView<T>, Masks, double*);
MATCHAR_NMF_INSTANTIATE(MATCHAR_DEVIANCE_DENSE, MATCHAR_DEVIANCE_CSR)

}  // namespace matchar::spectral
