// Internal helpers shared by the streaming estimators (streaming_pca.cpp, online_nmf.cpp):
// row-range parallelism, Eigen products of row-major blocks and the checks of a block of
// spectra. Not installed.
#pragma once

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "blocks.hpp"
#include "matchar/spectral/nmf.hpp"
#include "matchar/spectral/streaming.hpp"

// M(T, TX) for every count type the streaming estimators read: the explicit
// instantiations of streaming_pca.cpp and online_nmf.cpp.
#define MATCHAR_STREAMING_COUNT_TYPES(M, T) \
  M(T, std::uint8_t)                        \
  M(T, std::uint16_t)                       \
  M(T, std::uint32_t)                       \
  M(T, float)                               \
  M(T, double)

namespace matchar::spectral::streaming_detail {

using detail::RowMat;
using MatD = Eigen::MatrixXd;
// Power iterations of the residual range finder: 2 for the first block (nothing else to
// go on), 1 for later blocks, where the Krylov directions R^T D V0 (below) carry the
// correction of the known subspace and the random range only has to catch new ones.
constexpr int kPowerIterFirst = 2;
constexpr int kPowerIterMerge = 1;
using VecD = Eigen::VectorXd;
template <class T>
using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

// Rows of a block are processed in a fixed number of contiguous pieces (about 128 rows
// and at least 2^18 values each, at most kMaxPieces), independent of the thread count,
// handed to the threads one at a time (dynamic schedule). A thread that the OS
// deschedules (a loaded machine, or acquisition software busy on the other core) then
// holds up at most one piece: with a static split in halves the other thread waited
// (spinning) for the whole half. Blocks too small for two pieces run on one thread: the
// idle threads of a team spin between the parallel regions while the serial steps (QR,
// eigensolver) run, which cost a 256 x 512 line 10x its CPU time on 2 loaded cores.
// Per-piece partial results are summed in piece order, so results do not depend on the
// thread count or the schedule.
constexpr index_t kMaxPieces = 16;
constexpr index_t kMinPieceValues = index_t{1} << 18;
inline index_t n_pieces(index_t n, index_t cols) {
  const index_t by_rows = (n + 127) / 128;
  const index_t by_size = n * std::max<index_t>(cols, 1) / kMinPieceValues;
  return std::clamp<index_t>(std::min(by_rows, by_size), 1, kMaxPieces);
}

// One OpenMP thread for the calling thread while in scope, when `serial` (the setting is
// per OS thread and restored on exit, exceptions included).
class SerialScope {
 public:
  explicit SerialScope(bool serial) {
    if (serial && omp_get_max_threads() > 1) {
      saved_ = omp_get_max_threads();
      omp_set_num_threads(1);
    }
  }
  ~SerialScope() {
    if (saved_ > 0) omp_set_num_threads(saved_);
  }
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  int saved_ = 0;
};

// Runs f(i0, i1, piece) for the n_pieces(n, cols) row ranges of [0, n); the first
// exception is rethrown after the region.
template <class F>
void for_row_ranges(index_t n, index_t cols, F&& f) {
  const index_t np = n_pieces(n, cols);
  const int nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(num_threads(), np)));
  matchar::detail::parallel_for(np, nt, matchar::detail::Schedule::Dynamic, 1,
                                [&](index_t p) { f(n * p / np, n * (p + 1) / np, p); });
}

// D (n x C row-major) times B (C x m): rows split across threads.
template <class T>
ColMat<T> rows_times(const RowMat<T>& D, const ColMat<T>& B) {
  ColMat<T> out(D.rows(), B.cols());
  if (D.rows() == 0 || B.cols() == 0) return out;
  for_row_ranges(D.rows(), D.cols(), [&](index_t i0, index_t i1, index_t) {
    if (i1 > i0) out.middleRows(i0, i1 - i0).noalias() = D.middleRows(i0, i1 - i0) * B;
  });
  return out;
}

// D^T Y (C x m, double): per-piece partial products summed in piece order.
template <class T>
MatD rows_transpose_times(const RowMat<T>& D, const ColMat<T>& Y) {
  const index_t C = D.cols(), m = Y.cols();
  MatD out = MatD::Zero(C, m);
  if (D.rows() == 0 || m == 0) return out;
  std::vector<ColMat<T>> parts(static_cast<std::size_t>(n_pieces(D.rows(), C)));
  for_row_ranges(D.rows(), C, [&](index_t i0, index_t i1, index_t p) {
    parts[p] = ColMat<T>::Zero(C, m);
    if (i1 > i0)
      parts[p].noalias() = D.middleRows(i0, i1 - i0).transpose() * Y.middleRows(i0, i1 - i0);
  });
  for (const auto& part : parts) out += part.template cast<double>();
  return out;
}

// Orthonormal basis (thin Q, C x m) of the columns of M.
inline MatD orthonormal(const MatD& M) {
  Eigen::HouseholderQR<MatD> qr(M);
  return qr.householderQ() * MatD::Identity(M.rows(), M.cols());
}

inline void check_channels(index_t got, index_t expected, const char* what) {
  if (got != expected)
    throw InvalidArgument(std::string(what) + " has " + std::to_string(got) +
                          " channel(s), but the stream was created with " +
                          std::to_string(expected) +
                          " channels; the channel count cannot change during a stream");
}

template <class TX>
inline bool bad_value(TX v) {
  if constexpr (std::is_floating_point_v<TX>) return !(v >= TX(0)) || !std::isfinite(v);
  return false;
}

template <class TX>
void check_block(ConstMatrixView<TX> X, const char* what) {
  if (X.rows < 1) throw InvalidArgument(std::string(what) + " has no rows (spectra)");
  if constexpr (std::is_floating_point_v<TX>) {
    for (index_t i = 0; i < X.rows; ++i)
      for (index_t c = 0; c < X.cols; ++c)
        if (bad_value(X(i, c)))
          throw InvalidArgument(std::string(what) +
                                " contains negative, NaN or infinite values; spectra must be "
                                "finite non-negative counts");
  }
}

}  // namespace matchar::spectral::streaming_detail
