// Shared vocabulary of the matchar C++ core: typed errors, strided array views,
// thread counts and cooperative interruption. No Python anywhere below cpp/include.
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace matchar {

using index_t = std::ptrdiff_t;

// ---------------------------------------------------------------------------
// Errors. The Python bindings translate them to ValueError, MemoryError,
// KeyboardInterrupt and RuntimeError; C++ callers catch them as usual.
// ---------------------------------------------------------------------------
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class InvalidArgument : public Error {
 public:
  using Error::Error;
};
class OutOfMemory : public Error {
 public:
  using Error::Error;
};
class Interrupted : public Error {
 public:
  Interrupted() : Error("interrupted") {}
};

// ---------------------------------------------------------------------------
// A read-only 2-D view with arbitrary strides (in elements, not bytes), so that
// C-ordered, Fortran-ordered and sliced arrays reach the kernels without a copy.
// ---------------------------------------------------------------------------
template <class T>
struct MatrixView {
  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t row_stride = 0;  // elements between (i, j) and (i + 1, j)
  index_t col_stride = 1;  // elements between (i, j) and (i, j + 1)

  T& operator()(index_t i, index_t j) const { return data[i * row_stride + j * col_stride]; }

  // A row-major contiguous rows x cols matrix.
  static MatrixView contiguous(T* data, index_t rows, index_t cols) {
    return MatrixView{data, rows, cols, cols, 1};
  }
};

template <class T>
using ConstMatrixView = MatrixView<const T>;

// Throws InvalidArgument naming `name` when the view holds NaN or +-inf.
template <class T>
void require_finite(ConstMatrixView<T> m, const char* name);

// Throws OutOfMemory before a caller allocates n_elements * element_size bytes that
// overflow size_t or exceed what the process may allocate: its address-space limit
// (ulimit -v) less what is mapped, its cgroup's memory limit, the physical memory.
void check_allocation(std::size_t n_elements, std::size_t element_size, const char* what);

// ---------------------------------------------------------------------------
// Threads: the one place that decides how many OpenMP threads a kernel uses.
// It is OpenMP's own setting, so OMP_NUM_THREADS and threadpoolctl apply.
// ---------------------------------------------------------------------------
// num_threads() is OpenMP's max-threads setting, clamped to max_num_threads();
// set_num_threads throws InvalidArgument outside [1, max_num_threads()].
int num_threads();
void set_num_threads(int n);
int max_num_threads();  // 4 x the processors available to this process
// The size of the team a kernel's parallel region gets right now (a diagnostic).
int parallel_team_size();

// What libmatchar was compiled for (the kernels' speed rests on AVX2/FMA GEMM).
struct BuildInfo {
  bool avx2;
  bool fma;
  bool avx512f;
  int openmp;                                     // the _OPENMP date, e.g. 201511
  std::string cpu_level;                          // cpu_level()
  std::vector<std::string> cpu_levels;            // compiled in, lowest first
  std::vector<std::string> cpu_levels_supported;  // of those, what this CPU runs
};
BuildInfo build_info();

// The instruction-set level of the kernels dispatched at run time (the register-blocked
// NMF passes). x86-64 builds with MATCHAR_CPU_DISPATCH (the default there) hold
// "baseline" (x86-64-v2), "avx2" (x86-64-v3: AVX2, FMA) and "avx512" (x86-64-v4:
// AVX-512 F/BW/DQ/VL); other builds one, "generic", compiled with the build's flags.
// Decided at the first call: the highest level this CPU runs, or the one the environment
// variable MATCHAR_CPU_LEVEL names. Throws InvalidArgument for a name this build lacks or
// a level this CPU cannot run (no silent fallback), and Error on an x86-64 CPU below
// x86-64-v2.
const char* cpu_level();
// Forces a level from now on (same checks; "" returns to the decision above). For tests
// and benchmarks: a pass already running keeps the level it started with.
void set_cpu_level(const std::string& level);

// ---------------------------------------------------------------------------
// Cooperative interruption. An embedding application (e.g. the Python bindings,
// which check for Ctrl-C) installs a handler returning true to request a stop.
// Kernels call poll_interrupt() from their calling thread between blocks of work; it
// calls the handler at most every ~50 ms and is a no-op when no handler is set.
// ---------------------------------------------------------------------------
using InterruptHandler = std::function<bool()>;
void set_interrupt_handler(InterruptHandler handler);
bool poll_interrupt();

}  // namespace matchar
