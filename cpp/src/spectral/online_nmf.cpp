// OnlineNMF: NMF of spectra arriving in blocks (KL or Frobenius), with a forgetting factor.
#include "matchar/spectral/streaming.hpp"

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "streaming_common.hpp"

namespace matchar::spectral {
using namespace streaming_detail;

// ===========================================================================
// OnlineNMF
// ===========================================================================
template <class T>
struct OnlineNMF<T>::Impl {
  index_t C, K;
  double rho;
  int inner, init_iter;
  bool frobenius = false;
  std::mt19937_64 rng;
  RowMat<T> H;
  bool has_H = false;
  MatD A;  // K x C
  VecD B;  // K
  index_t n_seen = 0, batches = 0;

  template <class TX>
  static double block_mean(ConstMatrixView<TX> X) {
    double s = 0;
    for (index_t i = 0; i < X.rows; ++i)
      for (index_t j = 0; j < X.cols; ++j) s += static_cast<double>(X(i, j));
    return s / (static_cast<double>(X.rows) * static_cast<double>(X.cols));
  }

  // n_iter updates of W (rows x K) with H fixed (multiplicative for KL, HALS sweeps for
  // Frobenius); W ends in W. Returns the Frobenius loss of the final state (0 for KL).
  template <class TX>
  double update_maps(ConstMatrixView<TX> X, const RowMat<T>& Hm, RowMat<T>& W, int n_iter) const {
    RowMat<T> Wn(W.rows(), K);
    const auto hv = ConstMatrixView<T>::contiguous(Hm.data(), K, C);
    if (!frobenius) {  // all n_iter updates in one pass and one OpenMP region
      kl_update_maps<TX, T>(X, ConstMatrixView<T>::contiguous(W.data(), W.rows(), K), hv, n_iter,
                            Wn.data());
      W.swap(Wn);
      return 0.0;
    }
    double loss = 0.0;
    for (int it = 0; it < n_iter; ++it) {
      const auto wv = ConstMatrixView<T>::contiguous(W.data(), W.rows(), K);
      if (frobenius)
        loss = hals_update<TX, T>(X, wv, hv, Masks{}, false, Wn.data(), nullptr);
      else
        kl_update<TX, T>(X, wv, hv, Masks{}, false, false, Wn.data(), nullptr);
      W.swap(Wn);
    }
    return loss;
  }

  // One full iteration (W then H) of the batch algorithm on a block.
  template <class TX>
  void full_iteration(ConstMatrixView<TX> X, RowMat<T>& W, RowMat<T>& Hm) const {
    RowMat<T> Wn(W.rows(), K), Hn(K, C);
    const auto wv = ConstMatrixView<T>::contiguous(W.data(), W.rows(), K);
    const auto hv = ConstMatrixView<T>::contiguous(Hm.data(), K, C);
    if (frobenius)
      hals_update<TX, T>(X, wv, hv, Masks{}, true, Wn.data(), Hn.data());
    else
      kl_update<TX, T>(X, wv, hv, Masks{}, true, false, Wn.data(), Hn.data());
    W.swap(Wn);
    Hm.swap(Hn);
  }
};

template <class T>
OnlineNMF<T>::OnlineNMF(index_t n_channels, index_t n_components, double forget_factor,
                        int inner_iter, int init_iter, std::uint64_t seed, bool frobenius) {
  if (n_channels < 1) throw InvalidArgument("n_channels must be >= 1");
  if (n_components < 1 || n_components > n_channels)
    throw InvalidArgument("n_components must be in [1, n_channels] = [1, " +
                          std::to_string(n_channels) + "], got " + std::to_string(n_components));
  if (!(forget_factor > 0.0 && forget_factor <= 1.0))
    throw InvalidArgument("forget_factor must be in (0, 1], got " + std::to_string(forget_factor));
  if (inner_iter < 1) throw InvalidArgument("inner_iter must be >= 1");
  if (init_iter < 1) throw InvalidArgument("init_iter must be >= 1");
  impl_ = std::make_unique<Impl>();
  Impl& s = *impl_;
  s.C = n_channels;
  s.K = n_components;
  s.rho = forget_factor;
  s.inner = inner_iter;
  s.init_iter = init_iter;
  s.frobenius = frobenius;
  s.rng.seed(seed);
  s.A = frobenius ? MatD::Zero(s.K, s.K) : MatD::Zero(s.K, s.C);
  s.B = frobenius ? VecD::Zero(s.K * s.C) : VecD::Zero(s.K);
}
template <class T>
OnlineNMF<T>::~OnlineNMF() = default;
template <class T>
OnlineNMF<T>::OnlineNMF(OnlineNMF&&) noexcept = default;
template <class T>
OnlineNMF<T>& OnlineNMF<T>::operator=(OnlineNMF&&) noexcept = default;

template <class T>
void OnlineNMF<T>::set_components(const T* H) {
  Impl& s = *impl_;
  if (s.batches > 0) throw InvalidArgument("set_components: only before the first block");
  if (H == nullptr) throw InvalidArgument("H must not be null");
  RowMat<T> Hm(s.K, s.C);
  for (index_t j = 0; j < s.K * s.C; ++j) {
    if (bad_value(H[j])) throw InvalidArgument("H must be finite and non-negative");
    Hm.data()[j] = H[j];
  }
  s.H = std::move(Hm);
  s.has_H = true;
}

// Frobenius block step: HALS maps with H fixed, then A += W^T W, B += W^T X and HALS
// sweeps of H on the accumulated quadratic.
template <class T, class Impl, class TX>
double frobenius_block(Impl& s, ConstMatrixView<TX> X, RowMat<T> W, RowMat<T> H, T* maps) {
  const index_t nb = X.rows, K = s.K, C = s.C;
  const double loss = s.update_maps(X, H, W, s.batches == 0 ? 1 : s.inner);
  const MatD Wd = W.template cast<double>();
  MatD A = s.rho * s.A + Wd.transpose() * Wd;
  MatD XtW = MatD::Zero(C, K);  // X^T W, row by row (X has any strides and dtype)
  for (index_t i = 0; i < nb; ++i)
    for (index_t c = 0; c < C; ++c) {
      const double x = static_cast<double>(X(i, c));
      if (x != 0.0) XtW.row(c) += x * Wd.row(i);
    }
  VecD B = s.rho * s.B;
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c) B[k * C + c] += XtW(c, k);
  MatD Hd = H.template cast<double>();
  for (int sweep = 0; sweep < s.inner; ++sweep)
    for (index_t k = 0; k < K; ++k) {
      if (A(k, k) <= 0.0) continue;
      for (index_t c = 0; c < C; ++c) {
        double grad = -B[k * C + c];
        for (index_t l = 0; l < K; ++l) grad += A(k, l) * Hd(l, c);
        Hd(k, c) = std::max(Hd(k, c) - grad / A(k, k), 0.0);
      }
    }
  if (maps != nullptr) std::copy(W.data(), W.data() + nb * K, maps);
  s.H = Hd.template cast<T>();
  s.has_H = true;
  s.A = std::move(A);
  s.B = std::move(B);
  s.n_seen += nb;
  ++s.batches;
  return loss;
}

template <class T>
template <class TX>
double OnlineNMF<T>::partial_fit(ConstMatrixView<TX> X, T* maps) {
  Impl& s = *impl_;
  check_channels(X.cols, s.C, "X");
  check_block(X, "X");
  const index_t nb = X.rows, K = s.K, C = s.C;
  // A block too small for two of StreamingPCA's pieces runs on one thread (see n_pieces).
  const SerialScope serial(nb * C < 2 * kMinPieceValues);
  check_allocation(static_cast<std::size_t>(nb) * static_cast<std::size_t>(K) * 2, sizeof(T),
                   "online NMF maps");
  const double avg = std::sqrt(std::max(Impl::block_mean(X), kEpsilon) / static_cast<double>(K));
  RowMat<T> H = s.H;
  RowMat<T> W(nb, K);
  if (s.batches == 0) {
    std::normal_distribution<double> normal;
    if (!s.has_H) {  // scikit-learn's 'random' scheme on the first block
      H.resize(K, C);
      for (index_t j = 0; j < K * C; ++j)
        H.data()[j] = static_cast<T>(std::abs(avg * normal(s.rng)));
      for (index_t j = 0; j < nb * K; ++j)
        W.data()[j] = static_cast<T>(std::abs(avg * normal(s.rng)));
    } else {
      W.setConstant(static_cast<T>(avg));
    }
    // The first block is fitted like a batch NMF.
    for (int it = 0; it < s.init_iter; ++it) s.full_iteration(X, W, H);
  } else {
    W.setConstant(static_cast<T>(avg));
  }
  if (s.frobenius) return frobenius_block<T>(s, X, std::move(W), std::move(H), maps);
  s.update_maps(X, H, W, s.batches == 0 ? 1 : s.inner);
  // One more W update with the statistics of the H update.
  RowMat<T> Wn(nb, K), Hn(K, C);
  const double loss = kl_update<TX, T>(X, ConstMatrixView<T>::contiguous(W.data(), nb, K),
                                       ConstMatrixView<T>::contiguous(H.data(), K, C), Masks{},
                                       true, true, Wn.data(), Hn.data());
  VecD wsum = VecD::Zero(K);
  for (index_t i = 0; i < nb; ++i)
    for (index_t k = 0; k < K; ++k) wsum[k] += static_cast<double>(Wn(i, k));
  // kl_update wrote Hn = H * num / wsum: H (.) num = Hn * wsum.
  MatD A = s.rho * s.A;
  VecD B = s.rho * s.B + wsum;
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c) A(k, c) += static_cast<double>(Hn(k, c)) * wsum[k];
  RowMat<T> H_new(K, C);
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < C; ++c) {
      T h = B[k] > 0 ? static_cast<T>(A(k, c) / B[k]) : H(k, c);
      if (h < static_cast<T>(std::numeric_limits<double>::epsilon())) h = T(0);
      H_new(k, c) = h;
    }
  if (maps != nullptr) std::copy(Wn.data(), Wn.data() + nb * K, maps);
  // Commit.
  s.H = std::move(H_new);
  s.has_H = true;
  s.A = std::move(A);
  s.B = std::move(B);
  s.n_seen += nb;
  ++s.batches;
  return loss;
}

template <class T>
template <class TX>
void OnlineNMF<T>::transform(ConstMatrixView<TX> X, int n_iter, T* maps) const {
  const Impl& s = *impl_;
  check_channels(X.cols, s.C, "X");
  check_block(X, "X");
  if (!s.has_H || s.batches == 0) throw InvalidArgument("transform: no block has been merged yet");
  if (n_iter < 1) throw InvalidArgument("n_iter must be >= 1");
  const double avg = std::sqrt(std::max(Impl::block_mean(X), 0.0) / static_cast<double>(s.K));
  RowMat<T> W(X.rows, s.K);
  W.setConstant(static_cast<T>(avg));
  s.update_maps(X, s.H, W, n_iter);
  std::copy(W.data(), W.data() + X.rows * s.K, maps);
}

template <class T>
index_t OnlineNMF<T>::n_channels() const {
  return impl_->C;
}
template <class T>
index_t OnlineNMF<T>::n_components() const {
  return impl_->K;
}
template <class T>
index_t OnlineNMF<T>::n_samples_seen() const {
  return impl_->n_seen;
}
template <class T>
index_t OnlineNMF<T>::n_batches() const {
  return impl_->batches;
}
template <class T>
bool OnlineNMF<T>::has_components() const {
  return impl_->has_H;
}
template <class T>
void OnlineNMF<T>::components(T* out) const {
  if (!impl_->has_H) throw InvalidArgument("components: no block has been merged yet");
  std::copy(impl_->H.data(), impl_->H.data() + impl_->K * impl_->C, out);
}

// ---------------------------------------------------------------------------
// Explicit instantiations
// ---------------------------------------------------------------------------
#define MATCHAR_STREAMING_TX(T, TX)                                       \
  template double OnlineNMF<T>::partial_fit<TX>(ConstMatrixView<TX>, T*); \
  template void OnlineNMF<T>::transform<TX>(ConstMatrixView<TX>, int, T*) const;
#define MATCHAR_STREAMING(T)   \
  template class OnlineNMF<T>; \
  MATCHAR_STREAMING_COUNT_TYPES(MATCHAR_STREAMING_TX, T)

MATCHAR_STREAMING(float)
MATCHAR_STREAMING(double)

}  // namespace matchar::spectral
