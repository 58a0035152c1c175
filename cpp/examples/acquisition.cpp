// Simulates an acquisition: a spectrum image whose scan lines (width spectra x channels,
// uint16 counts) arrive one at a time, fed to matchar's StreamingPCA and OnlineNMF while
// the "scan" runs. Every `every` lines it prints the current explained variance and the
// angles between the online NMF components and the true phase spectra, and at the end
// the time per line update. Links the installed libmatchar (find_package(matchar)).
//
//   acquisition [lines=24] [width=256] [channels=512] [every=8]
//   acquisition 20 1000 2048 5      # the 1,000 x 2,048 scan line of the < 20 ms target
#include <matchar/common.hpp>
#include <matchar/spectral/streaming.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

namespace {

constexpr int kPhases = 3;

// Three phases: a Gaussian line pair on a decaying background each, normalised to sum 1.
std::vector<double> phase_spectra(int C) {
  const double peaks[kPhases][2] = {{0.15, 0.45}, {0.3, 0.7}, {0.55, 0.85}};
  std::vector<double> S(static_cast<std::size_t>(kPhases) * C);
  for (int p = 0; p < kPhases; ++p) {
    double total = 0;
    for (int c = 0; c < C; ++c) {
      const double e = static_cast<double>(c) / C;
      double v = 0.1 * std::exp(-3 * e);
      for (double mu : peaks[p]) v += std::exp(-0.5 * std::pow((e - mu) / 0.012, 2));
      S[p * C + c] = v;
      total += v;
    }
    for (int c = 0; c < C; ++c) S[p * C + c] /= total;
  }
  return S;
}

// Abundances at (line, x): smooth bands across the scan so that every line holds every
// phase in varying amounts (as when scanning across a layered sample).
void abundances(int line, int x, int lines, int width, double* a) {
  const double u = static_cast<double>(x) / width, v = static_cast<double>(line) / lines;
  a[0] = 0.5 + 0.5 * std::cos(6.28318 * (u + 0.3 * v));
  a[1] = 0.5 + 0.5 * std::cos(6.28318 * (u + 0.33 + 0.2 * v));
  a[2] = 0.5 + 0.5 * std::cos(6.28318 * (u + 0.66 - 0.25 * v));
  const double s = a[0] + a[1] + a[2];
  for (int p = 0; p < kPhases; ++p) a[p] /= s;
}

// Largest over phases of the smallest angle (degrees) to any component.
double worst_angle(const std::vector<double>& S, const std::vector<float>& H, int K, int C) {
  double worst = 0;
  for (int p = 0; p < kPhases; ++p) {
    double best = 180;
    for (int k = 0; k < K; ++k) {
      double dot = 0, ns = 0, nh = 0;
      for (int c = 0; c < C; ++c) {
        dot += S[p * C + c] * H[k * C + c];
        ns += S[p * C + c] * S[p * C + c];
        nh += static_cast<double>(H[k * C + c]) * H[k * C + c];
      }
      const double cosv = nh > 0 ? std::clamp(dot / std::sqrt(ns * nh), -1.0, 1.0) : 0.0;
      best = std::min(best, std::acos(cosv) * 57.29577951308232);
    }
    worst = std::max(worst, best);
  }
  return worst;
}

matchar::ConstMatrixView<std::uint16_t> matrix_view_of(const std::vector<std::uint16_t>& v,
                                                       int rows, int cols) {
  return matchar::ConstMatrixView<std::uint16_t>::contiguous(v.data(), rows, cols);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int lines = argc > 1 ? std::atoi(argv[1]) : 24;
  const int width = argc > 2 ? std::atoi(argv[2]) : 256;
  const int C = argc > 3 ? std::atoi(argv[3]) : 512;
  const int every = argc > 4 ? std::atoi(argv[4]) : 8;
  if (lines < 2 || width < 8 || C < 16 || every < 1) {
    std::fprintf(stderr, "usage: acquisition [lines>=2] [width>=8] [channels>=16] [every>=1]\n");
    return 2;
  }
  const int K = kPhases;
  const double counts_per_pixel = 200.0;
  std::printf("simulated scan: %d lines x %d spectra x %d channels, %d thread(s)\n", lines, width,
              C, matchar::num_threads());

  const std::vector<double> S = phase_spectra(C);
  matchar::spectral::StreamingPCA<float> pca(C, K, /*poisson=*/true);
  matchar::spectral::OnlineNMF<float> nmf(C, K, /*forget_factor=*/1.0, /*inner_iter=*/10,
                                          /*init_iter=*/50, /*seed=*/1);
  std::mt19937_64 rng(42);
  std::vector<std::uint16_t> line_buf(static_cast<std::size_t>(width) * C);
  std::vector<float> maps(static_cast<std::size_t>(width) * K), H(static_cast<std::size_t>(K) * C);
  std::vector<double> ev(K), ratio(K), t_pca, t_nmf, cpu_pca, cpu_nmf;
  using clock = std::chrono::steady_clock;

  for (int line = 0; line < lines; ++line) {
    // The detector: Poisson counts of the mixed phases, one spectrum per scan position.
    double a[kPhases];
    for (int x = 0; x < width; ++x) {
      abundances(line, x, lines, width, a);
      for (int c = 0; c < C; ++c) {
        double mu = 0;
        for (int p = 0; p < kPhases; ++p) mu += a[p] * S[p * C + c];
        std::poisson_distribution<int> poisson(counts_per_pixel * mu);
        line_buf[static_cast<std::size_t>(x) * C + c] = static_cast<std::uint16_t>(poisson(rng));
      }
    }
    const auto view = matrix_view_of(line_buf, width, C);
    // Wall time, and the process's CPU time (all threads): on a shared, loaded machine
    // the latter is what the update costs, the former also waits for a core.
    const std::clock_t c0 = std::clock();
    auto t0 = clock::now();
    pca.partial_fit(view);
    const std::clock_t c1 = std::clock();
    auto t1 = clock::now();
    nmf.partial_fit(view, maps.data());
    const std::clock_t c2 = std::clock();
    auto t2 = clock::now();
    t_pca.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    t_nmf.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    cpu_pca.push_back(1e3 * static_cast<double>(c1 - c0) / CLOCKS_PER_SEC);
    cpu_nmf.push_back(1e3 * static_cast<double>(c2 - c1) / CLOCKS_PER_SEC);

    if ((line + 1) % every == 0 || line + 1 == lines) {
      pca.explained_variance_ratio(ratio.data());
      nmf.components(H.data());
      std::printf("after %3d lines: PCA explained variance ratio", line + 1);
      for (int k = 0; k < K; ++k) std::printf(" %.4f", ratio[k]);
      std::printf(" | NMF worst angle to the true phases %.2f deg\n", worst_angle(S, H, K, C));
    }
  }
  std::printf("median update per line (%d x %d): StreamingPCA %.2f ms, OnlineNMF %.2f ms\n", width,
              C, median(t_pca), median(t_nmf));
  std::printf("median CPU time per line (all threads): StreamingPCA %.2f ms, OnlineNMF %.2f ms\n",
              median(cpu_pca), median(cpu_nmf));

  // A scan line with another channel count is a typed error, and the stream goes on.
  std::vector<std::uint16_t> wrong(static_cast<std::size_t>(4) * (C + 1), 1);
  try {
    pca.partial_fit(matrix_view_of(wrong, 4, C + 1));
  } catch (const matchar::InvalidArgument& e) {
    std::printf("caught matchar::InvalidArgument: %s\n", e.what());
  }

  pca.explained_variance_ratio(ratio.data());
  nmf.components(H.data());
  const double angle = worst_angle(S, H, K, C);
  // Three phases with sum-to-one abundances: two centred components carry the signal.
  const bool ok = pca.n_samples_seen() == static_cast<matchar::index_t>(lines) * width &&
                  ratio[0] + ratio[1] > 5 * ratio[2] && angle < 10.0;
  std::printf("%s\n", ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
