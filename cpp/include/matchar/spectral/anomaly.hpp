// The per-pixel excess-count scan behind matchar.spectral.residual_anomalies: for every
// pixel (and for the box x box sum of pixels centred on it), the channel window where the
// counts exceed a fitted model's expectation most, by the Poisson likelihood ratio.
#pragma once

#include <cstdint>

#include "matchar/common.hpp"
#include "matchar/spectral/nmf.hpp"

namespace matchar::spectral {

// The best window of one scale, per pixel: S counts and M expectation in the window
// (M >= 1e-12), its index into `windows` and its first (binned) channel. A pixel with no
// excess anywhere keeps window 0 at channel 0 (as numpy's argmax of an all-zero row).
struct WindowScanOut {
  double* S;
  double* M;
  std::int32_t* window;
  std::int32_t* start;
};

struct WindowScanArgs {
  const std::uint8_t* channels = nullptr;  // C, 1 = counted (nullptr: all)
  const std::uint8_t* pixels = nullptr;    // N, 1 = counted (nullptr: all)
  index_t group = 1;                       // channels summed per tested channel
  const index_t* windows = nullptr;        // widths in binned channels, 1..Cb
  int n_windows = 0;
  index_t nav_rows = 0, nav_cols = 0;  // N = nav_rows * nav_cols, pixels row-major
  int box = 1;                         // odd; > 1: also the box x box sums (zeros outside)
};

// X (N x C) counts, W (N x K) and Hb (K x Cb, Cb = ceil(C / group); the components with
// excluded channels zeroed, then `group` consecutive channels summed) float64. The
// counts of a pixel are binned the same way (excluded channels and pixels count 0), its
// expectation is W(i, :) Hb; for every window width w and start s the likelihood ratio
// G = 2 (S log(S / M) - (S - M)) of an excess (S > M, else 0) is scanned and the largest
// kept (the first of equal ones, the smaller width on ties across widths). `one` gets
// the pixel scale; `boxed` (used when args.box > 1) the box scale.
template <class TX>
void residual_window_scan(ConstMatrixView<TX> X, ConstMatrixView<double> W,
                          ConstMatrixView<double> Hb, const WindowScanArgs& args, WindowScanOut one,
                          WindowScanOut boxed);

// The same for CSR counts (indptr non-decreasing and indices within [0, C) are checked).
template <class TX, class TI>
void residual_window_scan_csr(CsrView<TX, TI> X, ConstMatrixView<double> W,
                              ConstMatrixView<double> Hb, const WindowScanArgs& args,
                              WindowScanOut one, WindowScanOut boxed);

}  // namespace matchar::spectral
