#include "matchar/imaging/correlation.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "../parallel.hpp"

namespace matchar::imaging {
namespace {

constexpr index_t kPrefixLanes = 4;

// The column-sum loops, once per level (correlation_kernels.inc).
#define MATCHAR_LCM_NS level_base
#define MATCHAR_LCM_ATTR
#include "correlation_kernels.inc"
#undef MATCHAR_LCM_NS
#undef MATCHAR_LCM_ATTR
#if defined(MATCHAR_CPU_DISPATCH) && !defined(MATCHAR_ARCH_NATIVE)
#define MATCHAR_LCM_NS level_v3
#define MATCHAR_LCM_ATTR __attribute__((target("arch=x86-64-v3")))
#include "correlation_kernels.inc"
#undef MATCHAR_LCM_NS
#undef MATCHAR_LCM_ATTR
#define MATCHAR_LCM_NS level_v4
#define MATCHAR_LCM_ATTR __attribute__((target("arch=x86-64-v4")))
#include "correlation_kernels.inc"
#undef MATCHAR_LCM_NS
#undef MATCHAR_LCM_ATTR
#endif

struct LcmLevel {
  void (*fresh)(double*, const double*, index_t, index_t, index_t, index_t, index_t, index_t,
                index_t);
  void (*slide)(double*, const double*, index_t, index_t, index_t, index_t, index_t, index_t,
                index_t, index_t);
};

// The copy of the level cpu_level() names (looked up per call). A build for this host
// (MATCHAR_ARCH=native) compiles the baseline copy with its own flags.
LcmLevel lcm_level() {
#if defined(MATCHAR_CPU_DISPATCH) && !defined(MATCHAR_ARCH_NATIVE)
  const std::string level = cpu_level();
  if (level == "avx512") return {level_v4::colsum_fresh, level_v4::colsum_slide};
  if (level == "avx2") return {level_v3::colsum_fresh, level_v3::colsum_slide};
#endif
  return {level_base::colsum_fresh, level_base::colsum_slide};
}

// Rows [begin, end) of `n` rows for member `t` of a team of `team` threads.
inline void band(index_t n, int t, int team, index_t& begin, index_t& end) {
  const index_t q = n / team, rem = n % team;
  begin = t * q + std::min<index_t>(t, rem);
  end = begin + q + (t < rem ? 1 : 0);
}

// Runs body(t, team, guard) on every thread of one region (thread t of team works on
// its own band), with the error/interrupt plumbing of parallel.hpp.
template <class Body>
void parallel_bands(Body&& body) {
  matchar::detail::ParallelGuard guard;
  guard.begin_region();
#pragma omp parallel num_threads(num_threads())
  {
    guard.run([&] { body(omp_get_thread_num(), omp_get_num_threads(), guard); });
    guard.arrive(omp_get_num_threads());
  }
  guard.finish();
}

// Called by every thread after each output row: thread 0 polls Ctrl-C.
inline bool should_stop(matchar::detail::ParallelGuard& guard) {
  guard.poll();
  return guard.stopped();
}

// The image minus its mean, as a contiguous double array, and the mean square of that.
template <class T>
std::vector<double> centred_copy(ConstMatrixView<T> image, double& mean_square) {
  const index_t H = image.rows, W = image.cols;
  check_allocation(static_cast<std::size_t>(H) * static_cast<std::size_t>(W), sizeof(double),
                   "local_correlation_map centred image");
  std::vector<double> c(static_cast<std::size_t>(H * W));
  double total = 0.0;
#pragma omp parallel for schedule(static) num_threads(num_threads()) reduction(+ : total)
  for (index_t y = 0; y < H; ++y) {
    double s = 0.0;
    for (index_t x = 0; x < W; ++x) {
      const double v = static_cast<double>(image(y, x));
      c[y * W + x] = v;
      s += v;
    }
    total += s;
  }
  const double mean = total / static_cast<double>(H * W);
  double sq = 0.0;
#pragma omp parallel for schedule(static) num_threads(num_threads()) reduction(+ : sq)
  for (index_t y = 0; y < H; ++y) {
    double s = 0.0;
    for (index_t x = 0; x < W; ++x) {
      const double v = c[y * W + x] - mean;
      c[y * W + x] = v;
      s += v * v;
    }
    sq += s;
  }
  mean_square = sq / static_cast<double>(H * W);
  return c;
}

// For every pixel q whose (2r+1)^2 box lies inside the image: a[q] = sum(box) / sqrt(n)
// and isd[q] = 1 / sqrt(sum(box^2) - sum(box)^2 / n), or 0 for a flat box.
void box_statistics(const std::vector<double>& c, index_t H, index_t W, int r, double flat,
                    std::vector<double>& a, std::vector<double>& isd) {
  const index_t side = 2 * static_cast<index_t>(r) + 1;
  const double n = static_cast<double>(side * side), sqrt_n = std::sqrt(n);
  a.assign(static_cast<std::size_t>(H * W), 0.0);
  isd.assign(static_cast<std::size_t>(H * W), 0.0);
  const index_t n_rows = H - 2 * r;
  parallel_bands([&](int t, int team, matchar::detail::ParallelGuard& guard) {
    index_t i0, i1;
    band(n_rows, t, team, i0, i1);
    std::vector<double> s1(static_cast<std::size_t>(W)), s2(static_cast<std::size_t>(W));
    for (index_t i = i0; i < i1; ++i) {
      const index_t yc = r + i;
      if (i == i0) {
        std::fill(s1.begin(), s1.end(), 0.0);
        std::fill(s2.begin(), s2.end(), 0.0);
        for (index_t y = yc - r; y <= yc + r; ++y) {
          const double* row = c.data() + y * W;
          for (index_t x = 0; x < W; ++x) {
            s1[x] += row[x];
            s2[x] += row[x] * row[x];
          }
        }
      } else {
        const double* in = c.data() + (yc + r) * W;
        const double* outr = c.data() + (yc - r - 1) * W;
        for (index_t x = 0; x < W; ++x) {
          s1[x] += in[x] - outr[x];
          s2[x] += in[x] * in[x] - outr[x] * outr[x];
        }
      }
      double b1 = 0.0, b2 = 0.0;
      for (index_t x = 0; x < side; ++x) {
        b1 += s1[x];
        b2 += s2[x];
      }
      for (index_t xc = r; xc < W - r; ++xc) {
        if (xc > r) {
          b1 += s1[xc + r] - s1[xc - r - 1];
          b2 += s2[xc + r] - s2[xc - r - 1];
        }
        const double var = b2 - b1 * b1 / n;
        a[yc * W + xc] = b1 / sqrt_n;
        isd[yc * W + xc] = var > flat ? 1.0 / std::sqrt(var) : 0.0;
      }
      if (should_stop(guard)) return;
    }
  });
}

}  // namespace

std::vector<int> select_shifts(int window, int n_shifts) {
  if (window < 1) throw InvalidArgument("window must be >= 1, got " + std::to_string(window));
  const long long available = ((2LL * window + 1) * (2LL * window + 1) - 1) / 2;
  if (n_shifts < 1 || n_shifts > available)
    throw InvalidArgument("n_shifts must be between 1 and " + std::to_string(available) +
                          " (the half-plane of shifts within +-window=" + std::to_string(window) +
                          "), got " + std::to_string(n_shifts));
  int step = 1;
  for (int g = window; g >= 1; --g) {
    const long long k = window / g;
    if (((2 * k + 1) * (2 * k + 1) - 1) / 2 >= n_shifts) {
      step = g;
      break;
    }
  }
  std::vector<std::tuple<long long, double, int, int>> cand;
  for (int dy = 0; dy <= window; dy += step)
    for (int dx = -(window / step) * step; dx <= window; dx += step) {
      if (dy == 0 && dx <= 0) continue;
      cand.emplace_back(static_cast<long long>(dy) * dy + static_cast<long long>(dx) * dx,
                        std::atan2(static_cast<double>(dy), static_cast<double>(dx)), dy, dx);
    }
  std::sort(cand.begin(), cand.end());
  std::vector<int> out(2 * static_cast<std::size_t>(n_shifts));
  for (int k = 0; k < n_shifts; ++k) {
    out[2 * k] = std::get<2>(cand[k]);
    out[2 * k + 1] = std::get<3>(cand[k]);
  }
  return out;
}

index_t correlation_map_extent(index_t extent, int patch, int window, int stride) {
  const index_t inner = extent - 2 * (static_cast<index_t>(patch) + window);
  if (inner <= 0 || stride < 1) return 0;
  return (inner + stride - 1) / stride;
}

template <class T>
void local_correlation_map(ConstMatrixView<T> image, int patch, int window, const int* shifts,
                           index_t n_shifts, int stride, float* out) {
  if (patch < 1) throw InvalidArgument("patch must be >= 1, got " + std::to_string(patch));
  if (window < 1) throw InvalidArgument("window must be >= 1, got " + std::to_string(window));
  if (stride < 1) throw InvalidArgument("stride must be >= 1, got " + std::to_string(stride));
  if (n_shifts < 1) throw InvalidArgument("n_shifts must be >= 1, got " + std::to_string(n_shifts));
  if (shifts == nullptr) throw InvalidArgument("shifts must not be null");
  if (out == nullptr) throw InvalidArgument("out must not be null");
  for (index_t k = 0; k < n_shifts; ++k)
    if (std::abs(shifts[2 * k]) > window || std::abs(shifts[2 * k + 1]) > window)
      throw InvalidArgument(
          "shifts[" + std::to_string(k) + "] = (" + std::to_string(shifts[2 * k]) + ", " +
          std::to_string(shifts[2 * k + 1]) + ") lies outside +-window=" + std::to_string(window));
  const index_t H = image.rows, W = image.cols;
  const index_t Ho = correlation_map_extent(H, patch, window, stride);
  const index_t Wo = correlation_map_extent(W, patch, window, stride);
  if (Ho == 0 || Wo == 0)
    throw InvalidArgument("image of shape (" + std::to_string(H) + ", " + std::to_string(W) +
                          ") is too small: both sides must exceed 2 * (patch + window) = " +
                          std::to_string(2 * (patch + window)));
  require_finite(image, "image");

  double mean_square = 0.0;
  const std::vector<double> c = centred_copy(image, mean_square);
  if (!(mean_square > 0.0))
    throw InvalidArgument("image is constant: the correlation of a flat image is undefined");
  const index_t r = patch, m = static_cast<index_t>(patch) + window, side = 2 * r + 1;
  const double flat = 1e-12 * mean_square * static_cast<double>(side * side);
  std::vector<double> a, isd;
  box_statistics(c, H, W, patch, flat, a, isd);

  // Output columns are processed in tiles so that one thread's column sums (n_shifts x
  // tile width doubles) and the tile of the output row stay in its L2 cache.
  const index_t S = n_shifts;
  const index_t tile_px = std::max<index_t>(128, (384 * 1024) / (8 * S) - 2 * r);
  const index_t tile = std::max<index_t>(1, tile_px / stride);
  const index_t n_tiles = (Wo + tile - 1) / tile;
  const index_t max_nx = (std::min(tile, Wo) - 1) * stride + side;
  check_allocation(static_cast<std::size_t>(S) * static_cast<std::size_t>(max_nx + 1) *
                       static_cast<std::size_t>(std::max(1, num_threads())),
                   sizeof(double), "local_correlation_map column sums");

  const LcmLevel level = lcm_level();
  parallel_bands([&](int t, int team, matchar::detail::ParallelGuard& guard) {
    index_t i0, i1;
    band(Ho, t, team, i0, i1);
    if (i0 >= i1) return;
    std::vector<double> colsum(static_cast<std::size_t>(S * max_nx));
    std::vector<double> prefix(static_cast<std::size_t>((max_nx + 1) * kPrefixLanes));
    for (index_t tj = 0; tj < n_tiles; ++tj) {
      const index_t j0 = tj * tile, nj = std::min(tile, Wo - j0);
      // Columns [x0, x0 + nx) of the image hold the boxes of output columns [j0, j0 + nj).
      const index_t x0 = m - r + j0 * stride, nx = (nj - 1) * stride + side;
      for (index_t i = i0; i < i1; ++i) {
        const index_t yc = m + i * stride;
        const bool fresh = (i == i0) || stride >= side;
        float* orow = out + (i * Wo + j0) * S;
        for (index_t k = 0; k < S; ++k) {
          const index_t dy = shifts[2 * k], dx = shifts[2 * k + 1];
          double* cs = colsum.data() + k * max_nx;
          // Vertical: column sums of c(y, x) c(y + dy, x + dx) over the box rows.
          if (fresh)
            level.fresh(cs, c.data(), W, x0, nx, yc - r, yc + r, dy, dx);
          else
            level.slide(cs, c.data(), W, x0, nx, yc + r - stride + 1, yc - r - stride, stride, dy,
                        dx);
        }
        for (index_t k0 = 0; k0 < S; k0 += kPrefixLanes) {
          // Horizontal: box sums as differences of prefix sums. A prefix sum is one
          // serial chain of additions; kPrefixLanes shifts run side by side so that
          // their chains overlap.
          const index_t nk = std::min<index_t>(kPrefixLanes, S - k0);
          double acc[kPrefixLanes] = {};
          double* P = prefix.data();
          const double* cs = colsum.data() + k0 * max_nx;
          if (nk == kPrefixLanes) {
            for (index_t x = 0; x < nx; ++x)
              for (index_t l = 0; l < kPrefixLanes; ++l)
                P[(x + 1) * kPrefixLanes + l] = (acc[l] += cs[l * max_nx + x]);
          } else {
            for (index_t x = 0; x < nx; ++x)
              for (index_t l = 0; l < nk; ++l)
                P[(x + 1) * kPrefixLanes + l] = (acc[l] += cs[l * max_nx + x]);
          }
          for (index_t l = 0; l < kPrefixLanes; ++l) P[l] = 0.0;
          for (index_t l = 0; l < nk; ++l) {
            const index_t k = k0 + l;
            const index_t dy = shifts[2 * k], dx = shifts[2 * k + 1];
            const index_t o0 = yc * W + m + j0 * stride;
            const index_t o1 = (yc + dy) * W + m + j0 * stride + dx;
            const double* ap = a.data() + o0;
            const double* sp = isd.data() + o0;
            const double* aq = a.data() + o1;
            const double* sq = isd.data() + o1;
            const double* Pl = P + l;
            float* ok = orow + k;
            for (index_t j = 0; j < nj; ++j) {
              const index_t o = j * stride;
              const double box = Pl[(o + side) * kPrefixLanes] - Pl[o * kPrefixLanes];
              const double v = (box - ap[o] * aq[o]) * sp[o] * sq[o];
              ok[j * S] = static_cast<float>(std::min(1.0, std::max(-1.0, v)));
            }
          }
        }
        if (should_stop(guard)) return;
      }
    }
  });
}

template void local_correlation_map<float>(ConstMatrixView<float>, int, int, const int*, index_t,
                                           int, float*);
template void local_correlation_map<double>(ConstMatrixView<double>, int, int, const int*, index_t,
                                            int, float*);

}  // namespace matchar::imaging
