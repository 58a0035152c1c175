// The register-blocked dense NMF passes for small K (1..kMaxSmallK), compiled once per
// instruction-set level and chosen at run time.
//
// nmf_blocked_impl.hpp holds the kernels. On x86-64 (MATCHAR_CPU_DISPATCH) it is
// compiled three times, by isa/nmf_blocked_v2.cpp, _v3.cpp and _v4.cpp with
// -march=x86-64-v2|v3|v4, each into its own namespace; elsewhere once, in
// nmf_blocked.cpp, with the library's own flags. blocked_kernels() picks the table of
// the level matchar::cpu_level() chose.
//
// The One Definition Rule across these translation units: only the plain structs below
// (no member functions called by the kernels) and extern functions defined in baseline
// code (run_blocks, cd_sweeps) are shared. The kernels use no inline function or
// template of another namespace (no std containers, no MatrixView::operator()), so that
// no weak symbol compiled for a newer CPU can replace the baseline one at link time.
#pragma once

#include <cstdint>

#include "matchar/common.hpp"
#include "matchar/spectral/nmf.hpp"

namespace matchar::spectral::detail {

// The pixels of X as rows of T: X's element type erased behind one function pointer per
// row, so that the blocked passes are compiled once per factor type T, not once per
// (count type, T) pair. `row_source` (row_source.hpp) builds one from a view.
template <class T>
struct RowSource {
  const void* data;  // with the shape and element strides of the original view
  index_t n_rows, n_cols, row_stride, col_stride;
  void (*load)(const RowSource&, index_t, T*);
  // The rows themselves when X already holds contiguous rows of T (null otherwise): the
  // passes that only read a group's rows use them in place instead of a packed copy.
  const T* direct = nullptr;
  // Unsigned integer counts with unit channel stride (kCountsU8/U16/U32, else 0): the
  // passes convert those rows with their own instruction set instead of calling `load`.
  int counts = 0;
};
enum : int { kCountsU8 = 1, kCountsU16 = 2, kCountsU32 = 3 };

// One dense KL pass (see kl_update): per-thread float64 outputs at tid * stride.
template <class T>
struct KlBlockArgs {
  RowSource<T> X;
  ConstMatrixView<T> W, H;
  Masks masks;
  bool update_H, with_loss;
  T* W_out;
  const T* den;  // K: the W update's denominators
  int n_threads;
  double* acc;  // K x C per thread (update_H): the H numerator
  index_t acc_stride;
  double* wsum_new;  // K per thread: column sums of the new W (included pixels)
  double* wsum_old;  // K per thread: column sums of the old W (with_loss)
  index_t wsum_stride;
  double* loss_part;  // one per thread
};

// One dense HALS W half (see hals_update_stats).
template <class T>
struct HalsBlockArgs {
  RowSource<T> X;
  ConstMatrixView<T> W, H;
  Masks masks;
  const double* HHt;  // K x K, H with the excluded channels zeroed
  int sweeps;
  T* W_out;
  int n_threads;
  double* acc;  // K x C per thread: X^T W_new
  index_t acc_stride;
  double* wtw;  // K x K per thread
  index_t wtw_stride;
  double* sumsq_part;  // one per thread
};

// Widest V the blocked Gram pass takes (wider: Eigen's GEMM).
constexpr index_t kMaxGramL = 64;

// The Poisson deviance of every pixel (see poisson_deviance):
// out[i] = 2 (sum_k W(i, k) hsum[k] + sum_c [x log(x / (W H)) - x] over the counted
// entries), hsum[k] the sum of H's row k over the included channels.
template <class T>
struct DevianceBlockArgs {
  RowSource<T> X;
  ConstMatrixView<T> W, H;
  const std::uint8_t* channels;  // 1 = included; null: all
  const double* hsum;            // K
  int n_threads;
  double* out;  // N
};

// One pass of the weighted Gram product (see weighted_gram_apply in svd.hpp): with
// Xw = diag(r) X diag(c) and Y = Xw V - offset, per thread Z += Y^T Xw (L x C, float64,
// at tid * stride) and s += the column sums of Y (L, at tid * stride + L * C).
template <class T>
struct GramBlockArgs {
  RowSource<T> X;
  const double* r;       // N row weights (null: 1)
  const double* c;       // C column weights (null: 1)
  ConstMatrixView<T> V;  // C x L
  const double* offset;  // L (null: 0)
  int n_threads;
  double* acc;
  index_t acc_stride;
};

// The passes of one level; each returns false (nothing done) for K > kMaxSmallK.
template <class T>
struct BlockedKernels {
  bool (*kl)(const KlBlockArgs<T>&);
  bool (*hals)(const HalsBlockArgs<T>&);
  bool (*deviance)(const DevianceBlockArgs<T>&);
  bool (*gram)(const GramBlockArgs<T>&);  // false for L > kMaxGramL
};
// The per-pixel arithmetic of the residual scan (anomaly.cpp), float64.
struct ScanKernels {
  // mu[c] = sum_k w[k] Hb[k * ld + c], c < Cb
  void (*expectation)(const double* w, index_t K, const double* Hb, index_t ld, index_t Cb,
                      double* mu);
  // dst[i] += src[i], i < n
  void (*add)(double* dst, const double* src, index_t n);
  // The window of largest likelihood ratio of an excess (see anomaly.hpp): SM = (S, M),
  // wc = (window index, start); cx, cm, ub: scratch of Cb + 1.
  void (*scan)(const double* x, const double* mu, index_t Cb, const index_t* windows, int n_windows,
               double* cx, double* cm, double* ub, double* SM, std::int32_t* wc);
};

struct BlockedTable {
  BlockedKernels<float> f32;
  BlockedKernels<double> f64;
  ScanKernels scan;
};

// The table of the level cpu_level() names now.
const BlockedTable& blocked_kernels();
template <class T>
const BlockedKernels<T>& blocked_kernels_for() {
  if constexpr (sizeof(T) == 4)
    return blocked_kernels().f32;
  else
    return blocked_kernels().f64;
}

// Baseline services for the kernels (defined once, compiled with the library's flags):
// body(ctx, block, thread) for every block on at most n_threads threads, with the
// error/interrupt plumbing of parallel.hpp; and the HALS coordinate descent of one row.
void run_blocks(index_t n_blocks, int n_threads, void (*body)(void*, index_t, int), void* ctx);
void cd_sweeps(double* w, const double* G, const double* b, index_t K, int sweeps);

// The levels' tables (those compiled in).
#if defined(MATCHAR_CPU_DISPATCH)
namespace x86_64_v2 {
const BlockedTable& blocked_table();
}
namespace x86_64_v3 {
const BlockedTable& blocked_table();
}
namespace x86_64_v4 {
const BlockedTable& blocked_table();
}
#else
namespace generic {
const BlockedTable& blocked_table();
}
#endif

}  // namespace matchar::spectral::detail
