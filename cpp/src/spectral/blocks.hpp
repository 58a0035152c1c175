// Private helpers of the spectral kernels: pixel blocks, packing, mask access and the
// error/interrupt plumbing of a blocked OpenMP pass.
#pragma once

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../parallel.hpp"
#include "matchar/common.hpp"
#include "matchar/spectral/nmf.hpp"

namespace matchar::spectral::detail {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per block: about 64k elements (256 kB of float) so a block and its W H fit in L2.
inline index_t block_rows(index_t cols) {
  const index_t target = (index_t{1} << 16) / std::max<index_t>(cols, 1);
  return std::clamp<index_t>(target, 8, 512);
}

// Largest rank with compile-time specialised kernels (W rows held in registers).
constexpr int kMaxSmallK = 8;

template <class F, int... I>
bool dispatch_small_k_impl(index_t K, F& f, std::integer_sequence<int, I...>) {
  return ((K == I + 1 ? (f(std::integral_constant<int, I + 1>{}), true) : false) || ...);
}

// Calls f(std::integral_constant<int, K>{}) and returns true for 1 <= K <= kMaxSmallK;
// false (f not called) otherwise, where the caller takes its general path.
template <class F>
bool dispatch_small_k(index_t K, F&& f) {
  return dispatch_small_k_impl(K, f, std::make_integer_sequence<int, kMaxSmallK>{});
}

inline bool included(const std::uint8_t* mask, index_t i) { return mask == nullptr || mask[i]; }

// Copy rows [r0, r0 + nr) of X into dst (nr x C) converted to T, optionally scaled by
// row weights r and column weights c.
template <class TX, class T>
void pack_rows(ConstMatrixView<TX> X, index_t r0, index_t nr, RowMat<T>& dst,
               const double* r = nullptr, const double* c = nullptr) {
  dst.resize(nr, X.cols);
  for (index_t i = 0; i < nr; ++i) {
    const TX* src = X.data + (r0 + i) * X.row_stride;
    T* d = dst.data() + i * X.cols;
    const index_t cs = X.col_stride;
    if (r == nullptr && c == nullptr) {
      if (cs == 1) {
        for (index_t j = 0; j < X.cols; ++j) d[j] = static_cast<T>(src[j]);
      } else {
        for (index_t j = 0; j < X.cols; ++j) d[j] = static_cast<T>(src[j * cs]);
      }
    } else {
      const double ri = r ? r[r0 + i] : 1.0;
      for (index_t j = 0; j < X.cols; ++j) {
        const double cj = c ? c[j] : 1.0;
        d[j] = static_cast<T>(static_cast<double>(src[j * cs]) * ri * cj);
      }
    }
  }
}

// A copy of a small factor view (any strides) as a row-major matrix.
template <class T, class U = T>
RowMat<U> to_matrix(ConstMatrixView<T> v) {
  RowMat<U> m(v.rows, v.cols);
  for (index_t i = 0; i < v.rows; ++i)
    for (index_t j = 0; j < v.cols; ++j) m(i, j) = static_cast<U>(v(i, j));
  return m;
}

// Runs body(block_index, thread_id) for every block of a static schedule over n_blocks on
// at most n_threads threads (thread ids stay < n_threads, so per-thread accumulators
// sized for n_threads remain valid), with the error/interrupt plumbing of parallel.hpp.
template <class Body>
void for_blocks(index_t n_blocks, int n_threads, Body&& body) {
  matchar::detail::parallel_for(
      n_blocks, n_threads, matchar::detail::Schedule::Static, 1,
      [] { return omp_get_thread_num(); }, [&](index_t b, int tid) { body(b, tid); });
}

inline void check_factors(index_t n, index_t c, index_t wr, index_t wc, index_t hr, index_t hc) {
  if (n < 1 || c < 1) throw InvalidArgument("X is empty");
  if (wc < 1) throw InvalidArgument("W must have at least one column (component)");
  if (wr != n || hr != wc || hc != c)
    throw InvalidArgument("shapes do not match: X is " + std::to_string(n) + " x " +
                          std::to_string(c) + ", W is " + std::to_string(wr) + " x " +
                          std::to_string(wc) + ", H is " + std::to_string(hr) + " x " +
                          std::to_string(hc));
}

}  // namespace matchar::spectral::detail
