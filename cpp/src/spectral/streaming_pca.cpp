// StreamingPCA: incremental (Poisson-weighted) PCA of spectra arriving in blocks.
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
// StreamingPCA
// ===========================================================================
template <class T>
struct StreamingPCA<T>::Impl {
  index_t C, K, L;
  bool poisson, center;
  std::mt19937_64 rng;
  double n = 0;         // spectra merged
  VecD colsum, s1, s2;  // per channel: sum x, sum r x, sum (r x)^2
  VecD c_sketch;        // column weights the sketch is expressed in
  VecD S;               // singular values of the sketch (L0)
  MatD Vt;              // L0 x C orthonormal rows; sketch B = diag(S) Vt
  index_t batch = 256;
  std::vector<double> queue;  // queued spectra, row-major
  index_t queued = 0;

  Impl(index_t c, index_t k, bool p, bool ctr, index_t over, std::uint64_t seed)
      : C(c), K(k), L(std::min(c, k + over)), poisson(p), center(ctr), rng(seed) {
    colsum = VecD::Zero(C);
    s1 = VecD::Zero(C);
    s2 = VecD::Zero(C);
    c_sketch = VecD::Ones(C);
    Vt.resize(0, C);
  }

  VecD column_weights(const VecD& cs) const {
    VecD c = VecD::Ones(C);
    if (!poisson) return c;
    const double total = cs.sum();
    for (index_t j = 0; j < C; ++j)
      c[j] = (total > 0 && cs[j] > 0) ? 1.0 / std::sqrt(cs[j] / total) : 0.0;
    return c;
  }

  template <class TX>
  void merge(ConstMatrixView<TX> X) {
    check_channels(X.cols, C, "X");
    check_block(X, "X");
    const index_t nb = X.rows;
    check_allocation(static_cast<std::size_t>(nb + 1) * static_cast<std::size_t>(C), sizeof(T),
                     "streaming PCA block");
    // Pass 1: row weights, per-channel sums (per-thread, reduced in thread order), and
    // the row-weighted block r_i x_i into D (T), all on a contiguous copy of each row.
    std::vector<double> r(static_cast<std::size_t>(nb));
    std::vector<MatD> acc(static_cast<std::size_t>(n_pieces(nb, C)));
    const bool corr = center && n > 0;
    const index_t nd = nb + (corr ? 1 : 0);
    RowMat<T> D(nd, C);
    for_row_ranges(nb, C, [&](index_t i0, index_t i1, index_t t) {
      acc[t] = MatD::Zero(C, 3);
      double* __restrict a0 = acc[t].col(0).data();
      double* __restrict a1 = acc[t].col(1).data();
      double* __restrict a2 = acc[t].col(2).data();
      std::vector<double> row(static_cast<std::size_t>(C));
      double* __restrict xr = row.data();
      for (index_t i = i0; i < i1; ++i) {
        const TX* src = X.data + i * X.row_stride;
        if (X.col_stride == 1) {
#pragma omp simd
          for (index_t j = 0; j < C; ++j) xr[j] = static_cast<double>(src[j]);
        } else {
          for (index_t j = 0; j < C; ++j) xr[j] = static_cast<double>(src[j * X.col_stride]);
        }
        double g = 0;
#pragma omp simd reduction(+ : g)
        for (index_t j = 0; j < C; ++j) g += xr[j];
        const double ri = poisson ? (g > 0 ? 1.0 / std::sqrt(g) : 0.0) : 1.0;
        r[i] = ri;
        T* __restrict d = D.data() + i * C;
#pragma omp simd
        for (index_t j = 0; j < C; ++j) {
          const double x = xr[j], y = ri * x;
          a0[j] += x;
          a1[j] += y;
          a2[j] += y * y;
          d[j] = static_cast<T>(y);
        }
      }
    });
    MatD sums = MatD::Zero(C, 3);
    for (const auto& a : acc) sums += a;

    // New column weights; the sketch is rescaled into them.
    const double n_old = n, n_new = n + static_cast<double>(nb);
    const VecD c_new = column_weights(colsum + sums.col(0));
    MatD B;  // old sketch, L0 x C
    if (Vt.rows() > 0) {
      B = S.asDiagonal() * Vt;
      for (index_t j = 0; j < C; ++j) {
        const double ratio = c_sketch[j] > 0 ? c_new[j] / c_sketch[j] : 0.0;
        B.col(j) *= ratio;
      }
    } else {
      B.resize(0, C);
    }
    VecD mu_b = VecD::Zero(C), mu_o = VecD::Zero(C);
    if (center) {
      mu_b = c_new.cwiseProduct(sums.col(1)) / static_cast<double>(nb);
      if (n_old > 0) mu_o = c_new.cwiseProduct(s1) / n_old;
    }
    // Pass 2: D = [centred weighted block; mean-correction row] in T.
    const std::vector<T> cT(c_new.data(), c_new.data() + C), muT(mu_b.data(), mu_b.data() + C);
    for_row_ranges(nb, C, [&](index_t i0, index_t i1, index_t) {
      const T* __restrict cw = cT.data();
      const T* __restrict mu = muT.data();
      for (index_t i = i0; i < i1; ++i) {
        T* __restrict d = D.data() + i * C;
#pragma omp simd
        for (index_t j = 0; j < C; ++j) d[j] = d[j] * cw[j] - mu[j];
      }
    });
    if (corr) {
      const double f = std::sqrt(n_old * static_cast<double>(nb) / n_new);
      for (index_t j = 0; j < C; ++j) D(nb, j) = static_cast<T>(f * (mu_o[j] - mu_b[j]));
    }

    // Subspace: span(B) + range of the residual of D (randomized, one power iteration).
    const index_t L0 = B.rows();
    const MatD V0 = L0 > 0 ? orthonormal(B.transpose()) : MatD(C, 0);
    const ColMat<T> V0t = V0.cast<T>();
    const index_t p = std::min(L, C - L0);
    // The products with D run on the widest panels possible: D is read 3 times per block
    // after the first (D [V0, omega], D^T [Y, P], D Qr).
    ColMat<T> P(nd, L0);  // D V0
    MatD Qr(C, 0);
    if (p == 0 && L0 > 0) P = rows_times<T>(D, V0t);
    if (p > 0) {
      std::normal_distribution<double> normal;
      MatD omega(C, p);
      for (index_t j = 0; j < p; ++j)
        for (index_t i = 0; i < C; ++i) omega(i, j) = normal(rng);
      // power_iter times: Y = R Z, Z = orth(R^T Y), with R = D (I - V0 V0^T) the residual
      // of the block: Z spans (R^T R)^q omega. On a first block q = 2 keeps the flat
      // Poisson-noise tail (~C directions) from tilting the subspace (q = 1 left ~3
      // degrees on a rank-3 test cube, q = 2 ~0.05 degree).
      // With the random range come R^T D V0, the directions through which the block
      // tilts the old subspace (the first-order term of the exact merge): a random range
      // of a flat noise residual would miss most of them.
      const index_t extra = L0 > 0 ? std::min(L0, C - L0 - p) : 0;
      MatD Z = std::move(omega), Zk;
      const int power_iter = L0 > 0 ? kPowerIterMerge : kPowerIterFirst;
      for (int q = 0; q < power_iter; ++q) {
        const ColMat<T> Zt = Z.cast<T>();
        ColMat<T> Y;
        if (q == 0 && L0 > 0) {
          ColMat<T> VZ(C, L0 + p);
          VZ << V0t, Zt;
          const ColMat<T> DVZ = rows_times<T>(D, VZ);
          P = DVZ.leftCols(L0);
          Y = DVZ.rightCols(p);
        } else {
          Y = rows_times<T>(D, Zt);
        }
        if (L0 > 0) Y.noalias() -= P * (V0t.transpose() * Zt);
        if (q == 0 && extra > 0) {
          ColMat<T> YP(nd, p + L0);
          YP << Y, P;
          const MatD DYP = rows_transpose_times<T>(D, YP);
          Z = DYP.leftCols(p);
          Zk = DYP.rightCols(L0);
          Zk.noalias() -= V0 * (P.transpose() * P).template cast<double>();
        } else {
          Z = rows_transpose_times<T>(D, Y);
        }
        if (L0 > 0) Z.noalias() -= V0 * (P.transpose() * Y).template cast<double>();
        Z = orthonormal(Z);
        if (L0 > 0) {
          Z.noalias() -= V0 * (V0.transpose() * Z);
          Z = orthonormal(Z);
        }
      }
      if (extra > 0) {
        MatD both(C, Z.cols() + extra);
        both << Z, Zk.leftCols(extra);
        both.noalias() -= V0 * (V0.transpose() * both);
        Z = orthonormal(both);
        Z.noalias() -= V0 * (V0.transpose() * Z);
        Z = orthonormal(Z);
      }
      Qr = std::move(Z);
    }
    // Rayleigh-Ritz on Q = [V0, Qr]: G = (M Q)^T (M Q), M = [B; D].
    const index_t m = L0 + Qr.cols();
    MatD Q(C, m);
    Q << V0, Qr;
    MatD T2(nd, m);
    if (L0 > 0) T2.leftCols(L0) = P.template cast<double>();
    if (Qr.cols() > 0)
      T2.rightCols(Qr.cols()) = rows_times<T>(D, Qr.cast<T>()).template cast<double>();
    MatD G = T2.transpose() * T2;
    if (L0 > 0) {
      const MatD T1 = B * Q;
      G.noalias() += T1.transpose() * T1;
    }
    Eigen::SelfAdjointEigenSolver<MatD> eig(0.5 * (G + G.transpose()));
    const index_t keep = std::min(L, m);
    VecD S_new(keep);
    MatD U(m, keep);
    for (index_t j = 0; j < keep; ++j) {
      const index_t src = m - 1 - j;  // eigenvalues ascend
      S_new[j] = std::sqrt(std::max(eig.eigenvalues()[src], 0.0));
      U.col(j) = eig.eigenvectors().col(src);
    }
    // Commit (nothing above touched the state).
    Vt = (Q * U).transpose();
    S = std::move(S_new);
    c_sketch = c_new;
    colsum += sums.col(0);
    s1 += sums.col(1);
    s2 += sums.col(2);
    n = n_new;
  }

  void flush() {
    if (queued == 0) return;
    const auto v = ConstMatrixView<double>::contiguous(queue.data(), queued, C);
    merge(v);
    queue.clear();
    queued = 0;
  }

  void ready() {
    flush();
    if (n < 2)
      throw InvalidArgument("the stream has seen " + std::to_string(static_cast<index_t>(n)) +
                            " spectrum/spectra; at least 2 are needed for a PCA");
    // scikit-learn's sign convention on the reported rows.
    for (index_t k = 0; k < std::min<index_t>(K, Vt.rows()); ++k) {
      index_t arg;
      Vt.row(k).cwiseAbs().maxCoeff(&arg);
      if (Vt(k, arg) < 0) Vt.row(k) *= -1.0;
    }
  }

  double total_var() const {
    double tv = 0;
    for (index_t j = 0; j < C; ++j) {
      const double ss = center ? s2[j] - s1[j] * s1[j] / n : s2[j];
      tv += c_sketch[j] * c_sketch[j] * std::max(ss, 0.0);
    }
    return tv / (n - 1);
  }
  double sv(index_t k) const { return k < S.size() ? S[k] : 0.0; }
};

template <class T>
StreamingPCA<T>::StreamingPCA(index_t n_channels, index_t n_components, bool poisson, bool center,
                              index_t n_oversamples, std::uint64_t seed) {
  if (n_channels < 1) throw InvalidArgument("n_channels must be >= 1");
  if (n_components < 1 || n_components > n_channels)
    throw InvalidArgument("n_components must be in [1, n_channels] = [1, " +
                          std::to_string(n_channels) + "], got " + std::to_string(n_components));
  if (n_oversamples < 0) throw InvalidArgument("n_oversamples must be >= 0");
  impl_ = std::make_unique<Impl>(n_channels, n_components, poisson, center, n_oversamples, seed);
}
template <class T>
StreamingPCA<T>::~StreamingPCA() = default;
template <class T>
StreamingPCA<T>::StreamingPCA(StreamingPCA&&) noexcept = default;
template <class T>
StreamingPCA<T>& StreamingPCA<T>::operator=(StreamingPCA&&) noexcept = default;

template <class T>
template <class TX>
void StreamingPCA<T>::partial_fit(ConstMatrixView<TX> X) {
  impl_->flush();
  impl_->merge(X);
}

template <class T>
template <class TX>
void StreamingPCA<T>::add_spectrum(const TX* x, index_t n_channels) {
  Impl& s = *impl_;
  check_channels(n_channels, s.C, "the spectrum");
  if (x == nullptr) throw InvalidArgument("the spectrum must not be null");
  for (index_t j = 0; j < n_channels; ++j)
    if (bad_value(x[j]))
      throw InvalidArgument(
          "the spectrum contains negative, NaN or infinite values; spectra must be finite "
          "non-negative counts");
  for (index_t j = 0; j < n_channels; ++j) s.queue.push_back(static_cast<double>(x[j]));
  if (++s.queued >= s.batch) s.flush();
}

template <class T>
index_t StreamingPCA<T>::batch_size() const {
  return impl_->batch;
}
template <class T>
void StreamingPCA<T>::set_batch_size(index_t rows) {
  if (rows < 1) throw InvalidArgument("batch size must be >= 1");
  impl_->batch = rows;
  if (impl_->queued >= rows) impl_->flush();
}
template <class T>
index_t StreamingPCA<T>::n_channels() const {
  return impl_->C;
}
template <class T>
index_t StreamingPCA<T>::n_components() const {
  return impl_->K;
}
template <class T>
index_t StreamingPCA<T>::n_samples_seen() const {
  return static_cast<index_t>(impl_->n) + impl_->queued;
}
template <class T>
void StreamingPCA<T>::components(double* out) {
  Impl& s = *impl_;
  s.ready();
  for (index_t k = 0; k < s.K; ++k)
    for (index_t j = 0; j < s.C; ++j) out[k * s.C + j] = k < s.Vt.rows() ? s.Vt(k, j) : 0.0;
}
template <class T>
void StreamingPCA<T>::singular_values(double* out) {
  impl_->ready();
  for (index_t k = 0; k < impl_->K; ++k) out[k] = impl_->sv(k);
}
template <class T>
void StreamingPCA<T>::explained_variance(double* out) {
  impl_->ready();
  for (index_t k = 0; k < impl_->K; ++k) out[k] = impl_->sv(k) * impl_->sv(k) / (impl_->n - 1);
}
template <class T>
void StreamingPCA<T>::explained_variance_ratio(double* out) {
  impl_->ready();
  const double tv = impl_->total_var();
  for (index_t k = 0; k < impl_->K; ++k)
    out[k] = tv > 0 ? impl_->sv(k) * impl_->sv(k) / (impl_->n - 1) / tv : 0.0;
}
template <class T>
double StreamingPCA<T>::total_variance() {
  impl_->ready();
  return impl_->total_var();
}
template <class T>
void StreamingPCA<T>::mean(double* out) {
  Impl& s = *impl_;
  s.ready();
  for (index_t j = 0; j < s.C; ++j) out[j] = s.center ? s.c_sketch[j] * s.s1[j] / s.n : 0.0;
}
template <class T>
void StreamingPCA<T>::spectrum_weights(double* out) {
  Impl& s = *impl_;
  s.ready();
  for (index_t j = 0; j < s.C; ++j) out[j] = s.c_sketch[j];
}

template <class T>
template <class TX>
void StreamingPCA<T>::transform(ConstMatrixView<TX> X, double* out) {
  Impl& s = *impl_;
  check_channels(X.cols, s.C, "X");
  check_block(X, "X");
  s.ready();
  VecD mu(s.C);
  mean(mu.data());
  const MatD Vk = s.Vt.topRows(std::min<index_t>(s.K, s.Vt.rows())).transpose();  // C x K
  for_row_ranges(X.rows, s.C, [&](index_t i0, index_t i1, index_t) {
    VecD y(s.C);
    for (index_t i = i0; i < i1; ++i) {
      double g = 0;
      for (index_t j = 0; j < s.C; ++j) g += static_cast<double>(X(i, j));
      const double ri = s.poisson ? (g > 0 ? 1.0 / std::sqrt(g) : 0.0) : 1.0;
      for (index_t j = 0; j < s.C; ++j)
        y[j] = static_cast<double>(X(i, j)) * ri * s.c_sketch[j] - mu[j];
      for (index_t k = 0; k < s.K; ++k) out[i * s.K + k] = k < Vk.cols() ? y.dot(Vk.col(k)) : 0.0;
    }
  });
}

// ---------------------------------------------------------------------------
// Explicit instantiations
// ---------------------------------------------------------------------------
#define MATCHAR_STREAMING_TX(T, TX)                                    \
  template void StreamingPCA<T>::partial_fit<TX>(ConstMatrixView<TX>); \
  template void StreamingPCA<T>::add_spectrum<TX>(const TX*, index_t); \
  template void StreamingPCA<T>::transform<TX>(ConstMatrixView<TX>, double*);
#define MATCHAR_STREAMING(T)      \
  template class StreamingPCA<T>; \
  MATCHAR_STREAMING_COUNT_TYPES(MATCHAR_STREAMING_TX, T)

MATCHAR_STREAMING(float)
MATCHAR_STREAMING(double)

}  // namespace matchar::spectral
