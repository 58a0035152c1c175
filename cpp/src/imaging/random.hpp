// Shared by the imaging simulators (HAADF, CBED): per-item seeds, shot noise and the
// checks of a batch's shape and motif indices. Internal to cpp/src/imaging.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "matchar/common.hpp"

namespace matchar::imaging::detail {

// Above this mean, shot noise is drawn from the rounded normal approximation.
constexpr double kNormalPoisson = 64.0;

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The seed of item n of a batch drawn with `seed`: independent of the thread count.
inline std::uint64_t item_seed(std::uint64_t seed, std::int64_t n) {
  return splitmix64(seed ^ splitmix64(static_cast<std::uint64_t>(n)));
}

// A Poisson count of mean lam >= 0 (rounded normal, clipped at 0, for lam >= 64: skewness
// < 0.125).
inline double shot_noise(double lam, std::mt19937_64& rng,
                         std::normal_distribution<double>& normal) {
  if (lam >= kNormalPoisson) return std::max(0.0, std::round(lam + std::sqrt(lam) * normal(rng)));
  if (lam > 0.0) return static_cast<double>(std::poisson_distribution<long long>(lam)(rng));
  return 0.0;
}

// The image shape, motif count and item count of a batch (`items`: the count's name).
inline void check_batch(index_t rows, index_t cols, index_t n_motifs, index_t n_items,
                        const char* items) {
  if (rows < 1 || cols < 1)
    throw InvalidArgument("shape must be positive, got (" + std::to_string(rows) + ", " +
                          std::to_string(cols) + ")");
  if (n_motifs < 1) throw InvalidArgument("n_motifs must be >= 1");
  if (n_items < 0) throw InvalidArgument(std::string(items) + " must be >= 0");
}

// Item n's motif index is in [0, n_motifs).
inline void check_motif_index(const std::int64_t* motif_index, index_t n, index_t n_motifs) {
  if (motif_index[n] < 0 || motif_index[n] >= n_motifs)
    throw InvalidArgument("motif_index[" + std::to_string(n) +
                          "] = " + std::to_string(motif_index[n]) + " is out of range [0, " +
                          std::to_string(n_motifs) + ")");
}

}  // namespace matchar::imaging::detail
