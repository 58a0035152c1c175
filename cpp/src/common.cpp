#include "matchar/common.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <mutex>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
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

namespace {

// A number from the first line of a file (cgroup limits), or -1 ("max", absent, unreadable).
double read_limit(const char* path) {
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return -1.0;
  char buf[64] = {0};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!ok || buf[0] < '0' || buf[0] > '9') return -1.0;
  return std::strtod(buf, nullptr);
}

// The memory limit of this process's cgroup (v2, else v1), or -1 when there is none.
// Read once: a container's limit does not change while it runs.
double cgroup_limit() {
  static const double limit = [] {
    double v = read_limit("/sys/fs/cgroup/memory.max");
    if (v < 0) v = read_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    // v1 reports "no limit" as a huge page-aligned number
    return v > 0 && v < 1e18 ? v : -1.0;
  }();
  return limit;
}

}  // namespace

void check_allocation(std::size_t n_elements, std::size_t element_size, const char* what) {
  const std::size_t max_elements =
      std::numeric_limits<std::size_t>::max() / (element_size ? element_size : 1);
  if (n_elements > max_elements)
    throw OutOfMemory(std::string(what) + ": the requested size overflows the address space");
  const double bytes = static_cast<double>(n_elements) * static_cast<double>(element_size);
  auto refuse = [&](const char* whose, double limit) {
    throw OutOfMemory(std::string(what) + " would need " + std::to_string(bytes / 1e9) +
                      " GB, more than " + whose + " (" + std::to_string(limit / 1e9) + " GB)");
  };
#if defined(__unix__) || defined(__APPLE__)
  // What this process may still map (ulimit -v): the limit less what is mapped now.
  struct rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    double mapped = 0.0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
      long pages = 0;
      if (std::fscanf(f, "%ld", &pages) == 1)
        mapped = static_cast<double>(pages) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
      std::fclose(f);
    }
    const double left = static_cast<double>(as.rlim_cur) - mapped;
    if (bytes > left) refuse("this process's address-space limit leaves", left);
  }
  const double cgroup = cgroup_limit();
  if (cgroup > 0 && bytes > cgroup) refuse("this container's memory limit", cgroup);
#endif
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) {
    const double physical = static_cast<double>(pages) * static_cast<double>(page_size);
    if (bytes > physical) refuse("this machine's memory", physical);
  }
#endif
  (void)bytes;
}

namespace {
struct CpuLevelSpec {
  const char* name;
  bool (*supported)();
};
#if defined(MATCHAR_CPU_DISPATCH)
// The x86-64 micro-architecture levels the kernels are compiled for (what
// -march=x86-64-v2|v3|v4 may use; the OS's support of the AVX registers included).
bool cpu_v2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("ssse3") &&
         __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2");
}
bool cpu_v3() {
  return cpu_v2() && __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
         __builtin_cpu_supports("bmi2");
}
bool cpu_v4() {
  return cpu_v3() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
constexpr CpuLevelSpec kCpuLevels[] = {{"baseline", cpu_v2}, {"avx2", cpu_v3}, {"avx512", cpu_v4}};
#else
bool cpu_any() { return true; }
constexpr CpuLevelSpec kCpuLevels[] = {{"generic", cpu_any}};
#endif

std::string level_names(bool supported_only) {
  std::string s;
  for (const CpuLevelSpec& l : kCpuLevels)
    if (!supported_only || l.supported()) s += (s.empty() ? "" : ", ") + std::string(l.name);
  return s.empty() ? "none" : s;
}

// The index of the level called `name` (what MATCHAR_CPU_LEVEL or set_cpu_level gave).
int checked_level(const std::string& name, const char* what) {
  for (int i = 0; i < static_cast<int>(std::size(kCpuLevels)); ++i) {
    if (name != kCpuLevels[i].name) continue;
    if (kCpuLevels[i].supported()) return i;
    throw InvalidArgument(std::string(what) + name +
                          ": this CPU cannot run that level (it runs: " + level_names(true) + ")");
  }
  throw InvalidArgument(std::string(what) + name +
                        ": not a level of this build (compiled: " + level_names(false) + ")");
}

int choose_cpu_level() {
  const char* forced = std::getenv("MATCHAR_CPU_LEVEL");
  if (forced != nullptr && *forced != '\0') return checked_level(forced, "MATCHAR_CPU_LEVEL=");
  for (int i = static_cast<int>(std::size(kCpuLevels)) - 1; i >= 0; --i)
    if (kCpuLevels[i].supported()) return i;
  throw Error(
      "this CPU is below x86-64-v2 (SSE4.2, POPCNT), the lowest level of this build's "
      "NMF kernels; build with -DMATCHAR_CPU_DISPATCH=OFF");
}

int default_cpu_level() {
  static const int level = choose_cpu_level();  // tried again after a throw
  return level;
}

std::atomic<int> g_forced_level{-1};  // set_cpu_level's, -1: none
}  // namespace

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
  info.cpu_level = cpu_level();
  for (const CpuLevelSpec& l : kCpuLevels) {
    info.cpu_levels.emplace_back(l.name);
    if (l.supported()) info.cpu_levels_supported.emplace_back(l.name);
  }
  return info;
}

const char* cpu_level() {
  const int forced = g_forced_level.load(std::memory_order_acquire);
  return kCpuLevels[forced >= 0 ? forced : default_cpu_level()].name;
}

void set_cpu_level(const std::string& level) {
  g_forced_level.store(level.empty() ? -1 : checked_level(level, "cpu level "),
                       std::memory_order_release);
}

int max_num_threads() { return 4 * std::max(1, omp_get_num_procs()); }

// Clamped: an OMP_NUM_THREADS far beyond the machine (thousands of threads) would make
// libgomp fail to create threads and end the process.
int num_threads() { return std::min(omp_get_max_threads(), max_num_threads()); }

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
  const int limit = max_num_threads();
  if (n < 1 || n > limit)
    throw InvalidArgument("n_threads must be in [1, " + std::to_string(limit) +
                          "] (4 per processor available), got " + std::to_string(n));
  omp_set_num_threads(n);
}

namespace {
std::mutex g_handler_mutex;
InterruptHandler g_handler;
// Per OS thread: a kernel polling in one Python thread must not suppress the polls of a
// kernel running in another (only the main thread sees Ctrl-C).
thread_local long long t_last_poll_ns = 0;
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
  if (now - t_last_poll_ns < 50'000'000LL) return false;
  t_last_poll_ns = now;
  InterruptHandler handler;
  {
    std::lock_guard<std::mutex> lock(g_handler_mutex);
    handler = g_handler;
  }
  return handler ? handler() : false;
}

}  // namespace matchar
