#include "matchar/spectral/anomaly.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../parallel.hpp"
#include "nmf_blocked.hpp"

namespace matchar::spectral {
namespace {

// The binned counts of pixel i of a dense X (excluded channels count 0).
template <class TX>
struct DenseRows {
  ConstMatrixView<TX> X;
  index_t rows() const { return X.rows; }
  index_t cols() const { return X.cols; }
  void load(const WindowScanArgs& a, index_t i, index_t Cb, double* x) const {
    const TX* row = X.data + i * X.row_stride;
    const index_t C = X.cols, cs = X.col_stride, g = a.group;
    for (index_t b = 0; b < Cb; ++b) {
      const index_t c0 = b * g, c1 = std::min(C, c0 + g);
      double v = 0.0;
      if (a.channels == nullptr) {
        for (index_t c = c0; c < c1; ++c) v += static_cast<double>(row[c * cs]);
      } else {
        for (index_t c = c0; c < c1; ++c)
          if (a.channels[c] != 0) v += static_cast<double>(row[c * cs]);
      }
      x[b] = v;
    }
  }
};

// The same for a CSR X (entries in any order; duplicates add up).
template <class TX, class TI>
struct CsrRows {
  CsrView<TX, TI> X;
  index_t rows() const { return X.rows; }
  index_t cols() const { return X.cols; }
  void load(const WindowScanArgs& a, index_t i, index_t Cb, double* x) const {
    std::fill(x, x + Cb, 0.0);
    for (auto p = static_cast<index_t>(X.indptr[i]); p < static_cast<index_t>(X.indptr[i + 1]);
         ++p) {
      const auto c = static_cast<index_t>(X.indices[p]);
      if (a.channels == nullptr || a.channels[c] != 0)
        x[c / a.group] += static_cast<double>(X.data[p]);
    }
  }
};

// Binned counts and expectation W(i, :) Hb of one pixel: x and mu of length Cb (Hb
// contiguous, K x Cb; w: scratch of K).
template <class Rows>
void bin_pixel(const detail::ScanKernels& k, const Rows& X, ConstMatrixView<double> W,
               const double* Hb, index_t Cb, const WindowScanArgs& a, index_t i, double* w,
               double* x, double* mu) {
  const index_t K = W.cols;
  if (a.pixels != nullptr && a.pixels[i] == 0) {
    std::fill(x, x + Cb, 0.0);
    std::fill(mu, mu + Cb, 0.0);
    return;
  }
  X.load(a, i, Cb, x);
  for (index_t j = 0; j < K; ++j) w[j] = W(i, j);
  k.expectation(w, K, Hb, Cb, Cb, mu);
}

// The scan of one (x, mu) pair into out[j], at the CPU's level.
inline void scan(const detail::ScanKernels& k, const double* x, const double* mu, index_t Cb,
                 const WindowScanArgs& a, double* cx, double* cm, double* ub, WindowScanOut out,
                 index_t j) {
  double SM[2];
  std::int32_t wc[2];
  k.scan(x, mu, Cb, a.windows, a.n_windows, cx, cm, ub, SM, wc);
  out.S[j] = SM[0];
  out.M[j] = SM[1];
  out.window[j] = wc[0];
  out.start[j] = wc[1];
}

template <class Rows>
void window_scan(const Rows& X, ConstMatrixView<double> W, ConstMatrixView<double> Hb,
                 const WindowScanArgs& a, WindowScanOut one, WindowScanOut boxed) {
  const index_t N = X.rows(), C = X.cols(), K = W.cols, Cb = Hb.cols;
  if (N < 1 || C < 1) throw InvalidArgument("X is empty");
  if (W.rows != N || K < 1 || Hb.rows != K)
    throw InvalidArgument("W must be (N, K) and Hb (K, Cb) with the N of X");
  if (a.group < 1 || Cb != (C + a.group - 1) / a.group)
    throw InvalidArgument(
        "Hb must have ceil(C / group) = " +
        std::to_string((C + std::max<index_t>(a.group, 1) - 1) / std::max<index_t>(a.group, 1)) +
        " columns, got " + std::to_string(Cb));
  if (a.n_windows < 1 || a.windows == nullptr) throw InvalidArgument("no window widths");
  for (int j = 0; j < a.n_windows; ++j)
    if (a.windows[j] < 1 || a.windows[j] > Cb)
      throw InvalidArgument("window widths must lie in [1, " + std::to_string(Cb) + "]");
  if (a.nav_rows < 1 || a.nav_cols < 1 || a.nav_rows * a.nav_cols != N)
    throw InvalidArgument("nav_rows * nav_cols must equal the number of pixels");
  if (a.box < 1 || a.box % 2 == 0) throw InvalidArgument("box must be an odd number >= 1");
  const bool with_box = a.box > 1;
  const detail::ScanKernels& kern = detail::blocked_kernels().scan;
  std::vector<double> hb(static_cast<std::size_t>(K * Cb));  // Hb, contiguous
  for (index_t k = 0; k < K; ++k)
    for (index_t c = 0; c < Cb; ++c) hb[static_cast<std::size_t>(k * Cb + c)] = Hb(k, c);
  const index_t rows = a.nav_rows, cols = a.nav_cols, h = a.box / 2;
  // Per thread: a ring of box rows of binned counts and expectation, and their
  // horizontal box sums; the scan's prefix sums.
  const index_t ring = with_box ? a.box : 1;
  const std::size_t per_row = static_cast<std::size_t>(cols) * static_cast<std::size_t>(Cb);
  const int nt = num_threads();
  check_allocation(static_cast<std::size_t>(nt) * (4 * ring * per_row + 5 * (Cb + 1)),
                   sizeof(double), "residual scan buffers");

  // Each task scans a contiguous range of image rows, filling its ring row by row.
  const index_t n_tasks = std::min<index_t>(rows, std::max<index_t>(1, 16 * nt));
  struct State {
    std::vector<double> x, mu, hx, hm, cx, cm, ub, sx, sm, w;
  };
  matchar::detail::ParallelGuard guard;  // Ctrl-C is polled per image row, too
  matchar::detail::parallel_for(
      guard, n_tasks, nt, matchar::detail::Schedule::Dynamic, 1,
      [&] {
        State s;
        s.x.resize(ring * per_row);
        s.mu.resize(ring * per_row);
        if (with_box) {
          s.hx.resize(ring * per_row);
          s.hm.resize(ring * per_row);
          s.sx.resize(static_cast<std::size_t>(Cb));
          s.sm.resize(static_cast<std::size_t>(Cb));
        }
        s.cx.resize(static_cast<std::size_t>(Cb) + 1);
        s.cm.resize(static_cast<std::size_t>(Cb) + 1);
        s.ub.resize(static_cast<std::size_t>(Cb) + 1);
        s.w.resize(static_cast<std::size_t>(K));
        return s;
      },
      [&](index_t task, State& s) {
        const index_t r0 = task * rows / n_tasks, r1 = (task + 1) * rows / n_tasks;
        auto slot = [&](index_t r) { return static_cast<std::size_t>(r % ring) * per_row; };
        // load image row r into its ring slot (binned, expectation, horizontal box sums)
        auto load = [&](index_t r) {
          double* x = s.x.data() + slot(r);
          double* mu = s.mu.data() + slot(r);
          for (index_t c = 0; c < cols; ++c)
            bin_pixel(kern, X, W, hb.data(), Cb, a, r * cols + c, s.w.data(), x + c * Cb,
                      mu + c * Cb);
          if (!with_box) return;
          double* hx = s.hx.data() + slot(r);
          double* hm = s.hm.data() + slot(r);
          for (index_t c = 0; c < cols; ++c) {
            double* ox = hx + c * Cb;
            double* om = hm + c * Cb;
            std::fill(ox, ox + Cb, 0.0);
            std::fill(om, om + Cb, 0.0);
            for (index_t cc = std::max<index_t>(0, c - h); cc <= std::min(cols - 1, c + h); ++cc) {
              kern.add(ox, x + cc * Cb, Cb);
              kern.add(om, mu + cc * Cb, Cb);
            }
          }
        };
        const index_t first = with_box ? std::max<index_t>(0, r0 - h) : r0;
        index_t loaded = first;  // rows [first, loaded) are in the ring
        for (index_t r = r0; r < r1; ++r) {
          guard.poll();
          if (guard.stopped()) return;
          const index_t need = with_box ? std::min(rows, r + h + 1) : r + 1;
          for (; loaded < need; ++loaded) load(loaded);
          for (index_t c = 0; c < cols; ++c) {
            const index_t i = r * cols + c;
            scan(kern, s.x.data() + slot(r) + c * Cb, s.mu.data() + slot(r) + c * Cb, Cb, a,
                 s.cx.data(), s.cm.data(), s.ub.data(), one, i);
            if (!with_box) continue;
            std::fill(s.sx.begin(), s.sx.end(), 0.0);
            std::fill(s.sm.begin(), s.sm.end(), 0.0);
            for (index_t rr = std::max<index_t>(0, r - h); rr <= std::min(rows - 1, r + h); ++rr) {
              kern.add(s.sx.data(), s.hx.data() + slot(rr) + c * Cb, Cb);
              kern.add(s.sm.data(), s.hm.data() + slot(rr) + c * Cb, Cb);
            }
            scan(kern, s.sx.data(), s.sm.data(), Cb, a, s.cx.data(), s.cm.data(), s.ub.data(),
                 boxed, i);
          }
        }
      });
  guard.finish();
}

}  // namespace

template <class TX>
void residual_window_scan(ConstMatrixView<TX> X, ConstMatrixView<double> W,
                          ConstMatrixView<double> Hb, const WindowScanArgs& args, WindowScanOut one,
                          WindowScanOut boxed) {
  window_scan(DenseRows<TX>{X}, W, Hb, args, one, boxed);
}

template <class TX, class TI>
void residual_window_scan_csr(CsrView<TX, TI> X, ConstMatrixView<double> W,
                              ConstMatrixView<double> Hb, const WindowScanArgs& args,
                              WindowScanOut one, WindowScanOut boxed) {
  for (index_t i = 0; i < X.rows; ++i)
    if (X.indptr[i + 1] < X.indptr[i]) throw InvalidArgument("indptr must be non-decreasing");
  const auto nnz = static_cast<index_t>(X.indptr[X.rows]);
  for (index_t j = 0; j < nnz; ++j)
    if (X.indices[j] < 0 || static_cast<index_t>(X.indices[j]) >= X.cols)
      throw InvalidArgument("indices out of range");
  window_scan(CsrRows<TX, TI>{X}, W, Hb, args, one, boxed);
}

#define MATCHAR_WINDOW_SCAN(TX)                                                          \
  template void residual_window_scan<TX>(ConstMatrixView<TX>, ConstMatrixView<double>,   \
                                         ConstMatrixView<double>, const WindowScanArgs&, \
                                         WindowScanOut, WindowScanOut);
MATCHAR_WINDOW_SCAN(std::uint8_t)
MATCHAR_WINDOW_SCAN(std::uint16_t)
MATCHAR_WINDOW_SCAN(std::uint32_t)
MATCHAR_WINDOW_SCAN(float)
MATCHAR_WINDOW_SCAN(double)

#define MATCHAR_WINDOW_SCAN_CSR(TX, TI)                                                          \
  template void residual_window_scan_csr<TX, TI>(CsrView<TX, TI>, ConstMatrixView<double>,       \
                                                 ConstMatrixView<double>, const WindowScanArgs&, \
                                                 WindowScanOut, WindowScanOut);
MATCHAR_WINDOW_SCAN_CSR(float, std::int32_t)
MATCHAR_WINDOW_SCAN_CSR(float, std::int64_t)
MATCHAR_WINDOW_SCAN_CSR(double, std::int32_t)
MATCHAR_WINDOW_SCAN_CSR(double, std::int64_t)

}  // namespace matchar::spectral
