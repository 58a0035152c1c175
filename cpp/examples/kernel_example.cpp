// A C++ program that embeds matchar without Python: it links the installed
// libmatchar (find_package(matchar)) and evaluates a GP kernel.
#include <matchar/common.hpp>
#include <matchar/gp/kernels.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  // Three 4-dimensional descriptors; the third is the first scaled by 2.
  const std::vector<double> x = {1, 0, 2, 1,  //
                                 0, 1, 0, 1,  //
                                 2, 0, 4, 2};
  const auto X = matchar::ConstMatrixView<double>::contiguous(x.data(), 3, 4);
  std::vector<double> K(9);
  matchar::gp::polynomial_kernel<double>(X, X, /*zeta=*/2, /*normalize=*/true, K.data());

  std::printf("matchar polynomial kernel (zeta=2), %d thread(s):\n", matchar::num_threads());
  for (int i = 0; i < 3; ++i)
    std::printf("  %.6f %.6f %.6f\n", K[3 * i], K[3 * i + 1], K[3 * i + 2]);

  // Bad input is a typed exception, never an abort.
  const std::vector<double> y = {1, 2, 3};
  try {
    matchar::gp::polynomial_kernel<double>(
        X, matchar::ConstMatrixView<double>::contiguous(y.data(), 1, 3), 2, true, K.data());
  } catch (const matchar::InvalidArgument& e) {
    std::printf("caught matchar::InvalidArgument: %s\n", e.what());
  }

  // Parallel vectors have kernel 1; (1,0,2,1).(0,1,0,1) = 1, norms sqrt(6) and sqrt(2).
  const double expected01 = std::pow(1.0 / std::sqrt(12.0), 2);
  const bool ok = std::abs(K[2] - 1.0) < 1e-12 && std::abs(K[1] - expected01) < 1e-12;
  std::printf("%s\n", ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
