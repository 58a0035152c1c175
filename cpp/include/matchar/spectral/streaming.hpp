// Streaming decompositions for acquisition software: spectra arrive one by one or a scan
// line (rows x C) at a time while the scan is running, and the current components are
// available at any time. No Eigen here: the state lives behind a pointer (pimpl).
//
// StreamingPCA: incremental (Poisson-weighted) PCA. The state is a rank-L sketch
// B (L x C, L = n_components + n_oversamples) of the centred, weighted data seen so far
// (B^T B ~ the scatter matrix), plus running sums. A block D of new centred rows (and the
// mean-correction row of Ross et al. 2008 / scikit-learn's IncrementalPCA) is merged by a
// Rayleigh-Ritz step on the subspace span(B) + range(residual of D), the latter found by a
// randomized range finder with one power iteration (Halko et al. 2011): the cost is a few
// rows x C x L products per block, no C x C matrix and no SVD of the block.
// Poisson weighting (Keenan & Kotula): row i is scaled by 1/sqrt(total counts of i) and
// column c by 1/sqrt(h_c), h the mean spectrum (normalised to sum 1) of everything seen
// so far. When h changes, the sketch's columns are rescaled by c_new / c_old, which is
// exact for the part of the data the sketch holds; the means and the total variance are
// kept as exact running sums.
//
// OnlineNMF: online KL (Poisson) NMF, Lefevre, Bach & Fevotte (2011). For each new block
// the maps W_b of its rows are fitted by multiplicative updates with the components H
// fixed; then one update of W_b and the sufficient statistics
//   A <- rho A + H (.) W_b^T (X_b / (W_b H)),   B <- rho B + W_b^T 1,   H <- A / B
// (rho the forgetting factor, 1 = every row counts equally). The first block is fitted
// like a batch NMF (init_iter full iterations) from a random or given H.
// With the Frobenius loss (Mairal et al. 2010, online dictionary learning) the maps come
// from HALS sweeps with H fixed, the statistics are A <- rho A + W_b^T W_b (K x K) and
// B <- rho B + W_b^T X_b (K x C), and H is updated by inner_iter HALS sweeps on
// 0.5 tr(H^T A H) - tr(B^T H), which is the Frobenius loss of everything seen so far.
//
// Neither class is thread-safe: one object per thread (calls on different objects may
// run concurrently). Each update uses matchar::num_threads() OpenMP threads.
#pragma once

#include <cstdint>
#include <memory>

#include "matchar/common.hpp"

namespace matchar::spectral {

// T: precision of the block products (float or double); the sketch, means and variances
// are accumulated in double either way.
template <class T>
class StreamingPCA {
 public:
  // n_channels >= 1, 1 <= n_components <= n_channels, n_oversamples >= 0; seed drives the
  // random range finder (results are reproducible for a fixed seed and thread count).
  StreamingPCA(index_t n_channels, index_t n_components, bool poisson = true, bool center = true,
               index_t n_oversamples = 10, std::uint64_t seed = 0);
  ~StreamingPCA();
  StreamingPCA(StreamingPCA&&) noexcept;
  StreamingPCA& operator=(StreamingPCA&&) noexcept;
  StreamingPCA(const StreamingPCA&) = delete;
  StreamingPCA& operator=(const StreamingPCA&) = delete;

  // Merge a block of spectra (rows x n_channels, any strides; TX = uint8/16/32, float,
  // double; non-negative and finite). A block with another channel count, negative or
  // non-finite values throws InvalidArgument and leaves the state unchanged.
  template <class TX>
  void partial_fit(ConstMatrixView<TX> X);
  // Queue one spectrum (n_channels values); queued spectra are merged as one block every
  // batch_size() spectra and before any query below.
  template <class TX>
  void add_spectrum(const TX* x, index_t n_channels);
  index_t batch_size() const;
  void set_batch_size(index_t rows);  // default 256

  index_t n_channels() const;
  index_t n_components() const;
  index_t n_samples_seen() const;  // merged + queued

  // Queries (merge queued spectra first). Sizes: components K x C (row-major, unit rows,
  // largest |entry| of each row positive), explained_variance / ratio / singular values
  // K, mean C (mean weighted spectrum; zeros when !center), spectrum_weights C
  // (1/sqrt(h), ones when !poisson). Need n_samples_seen() >= 2 (else InvalidArgument).
  void components(double* out);
  void explained_variance(double* out);
  void explained_variance_ratio(double* out);
  void singular_values(double* out);
  void mean(double* out);
  void spectrum_weights(double* out);
  double total_variance();

  // Scores of spectra in the current model: (diag(r) X diag(c) - mean) components^T,
  // out rows x K row-major.
  template <class TX>
  void transform(ConstMatrixView<TX> X, double* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// T: precision of the factors (float or double); the statistics A and B are double.
template <class T>
class OnlineNMF {
 public:
  // forget_factor in (0, 1]; inner_iter >= 1 W updates per block; init_iter >= 1 full
  // iterations on the first block; frobenius: the loss (false: KL).
  OnlineNMF(index_t n_channels, index_t n_components, double forget_factor = 1.0,
            int inner_iter = 20, int init_iter = 100, std::uint64_t seed = 0,
            bool frobenius = false);
  ~OnlineNMF();
  OnlineNMF(OnlineNMF&&) noexcept;
  OnlineNMF& operator=(OnlineNMF&&) noexcept;
  OnlineNMF(const OnlineNMF&) = delete;
  OnlineNMF& operator=(const OnlineNMF&) = delete;

  // Start from these components (K x C row-major, finite, >= 0) instead of a random H
  // drawn from the first block. Only before the first block.
  void set_components(const T* H);

  // Merge a block (rows x n_channels). maps (rows x K row-major) receives the block's
  // abundances in the model before this block's H update; nullptr to skip. Returns the
  // block's loss under H before the block: KL with the maps before the last W update,
  // Frobenius (0.5 |X_b - W_b H|^2) with the final maps.
  template <class TX>
  double partial_fit(ConstMatrixView<TX> X, T* maps);

  // Abundances of spectra with H fixed: n_iter multiplicative updates from a constant
  // start (rows x K row-major).
  template <class TX>
  void transform(ConstMatrixView<TX> X, int n_iter, T* maps) const;

  index_t n_channels() const;
  index_t n_components() const;
  index_t n_samples_seen() const;
  index_t n_batches() const;
  void components(T* out) const;  // K x C; InvalidArgument before the first block
  bool has_components() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace matchar::spectral
