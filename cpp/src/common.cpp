#include "matchar/common.hpp"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace matchar {

template <class T>
void require_finite(ConstMatrixView<T> m, const char* name) {
  bool finite = true;
#pragma omp parallel for reduction(&& : finite) schedule(static) num_threads(num_threads())
  for (index_t i = 0; i < m.rows; ++i) {
    bool row_ok = true;
    for (index_t j = 0; j < m.cols; ++j) row_ok = row_ok && std::isfinite(m(i, j));
    finite = finite && row_ok;
  }
  if (!finite) throw InvalidArgument(std::string(name) + " contains NaN or infinite values");
}
template void require_finite<float>(ConstMatrixView<float>, const char*);
template void require_finite<double>(ConstMatrixView<double>, const char*);

void check_allocation(std::size_t n_elements, std::size_t element_size, const char* what) {
  const std::size_t max_elements =
      std::numeric_limits<std::size_t>::max() / (element_size ? element_size : 1);
  if (n_elements > max_elements)
    throw OutOfMemory(std::string(what) + ": the requested size overflows the address space");
  const double bytes = static_cast<double>(n_elements) * static_cast<double>(element_size);
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) {
    const double physical = static_cast<double>(pages) * static_cast<double>(page_size);
    if (bytes > physical)
      throw OutOfMemory(std::string(what) + " would need " + std::to_string(bytes / 1e9) +
                        " GB, more than this machine's " + std::to_string(physical / 1e9) +
                        " GB of memory");
  }
#endif
  (void)bytes;
}

BuildInfo build_info() {
  BuildInfo info{};
#if defined(__AVX2__)
  info.avx2 = true;
#endif
#if defined(__FMA__)
  info.fma = true;
#endif
#if defined(__AVX512F__)
  info.avx512f = true;
#endif
  info.openmp = _OPENMP;
  return info;
}

int num_threads() { return omp_get_max_threads(); }

int parallel_team_size() {
  int size = 0;
#pragma omp parallel num_threads(num_threads())
  {
#pragma omp single
    size = omp_get_num_threads();
  }
  return size;
}

void set_num_threads(int n) {
  if (n < 1) throw InvalidArgument("n_threads must be >= 1, got " + std::to_string(n));
  omp_set_num_threads(n);
}

namespace {
std::mutex g_handler_mutex;
InterruptHandler g_handler;
std::atomic<long long> g_last_poll_ns{0};
}  // namespace

void set_interrupt_handler(InterruptHandler handler) {
  std::lock_guard<std::mutex> lock(g_handler_mutex);
  g_handler = std::move(handler);
}

bool poll_interrupt() {
  using clock = std::chrono::steady_clock;
  const long long now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
  // Checking costs a GIL round trip in Python: do it at most every 50 ms.
  if (now - g_last_poll_ns.load(std::memory_order_relaxed) < 50'000'000LL) return false;
  g_last_poll_ns.store(now, std::memory_order_relaxed);
  InterruptHandler handler;
  {
    std::lock_guard<std::mutex> lock(g_handler_mutex);
    handler = g_handler;
  }
  return handler ? handler() : false;
}

}  // namespace matchar
