// Releasing the GIL around a kernel call, safely at interpreter exit.
//
// Python 3.11-3.13 end a thread that takes the GIL back while the interpreter is
// finalizing with pthread_exit(). Its forced unwind cannot pass the kernels' noexcept
// frames and OpenMP regions (nor pybind11's gil_scoped_release destructor), so the whole
// process used to abort ("terminate called without an active exception", "FATAL:
// exception not rethrown") whenever a program exited while a daemon thread ran a kernel.
//
// So, from an atexit callback on (begin_exit, registered when matchar._core is
// imported; atexit runs before finalization starts), no matchar code takes the GIL: the
// Ctrl-C poll asks a running kernel to stop, and a thread whose kernel returns waits for
// the process to end where it would have taken the GIL back, as Python 3.14 itself does.
// begin_exit releases the GIL until the kernels in flight have stopped (at most 2 s), so
// that none is left waiting for the GIL when finalization starts.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace matchar_py {

inline std::atomic<bool>& exiting_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

// Kernel calls that released the GIL (in flight), and those parked for the exit.
inline std::atomic<int>& in_flight() {
  static std::atomic<int> n{0};
  return n;
}
inline std::atomic<int>& parked() {
  static std::atomic<int> n{0};
  return n;
}

// Whether the GIL must not be taken: the interpreter is exiting, finalizing or gone.
inline bool finalizing() noexcept {
  if (exiting_flag().load(std::memory_order_acquire)) return true;
  if (!Py_IsInitialized()) return true;
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// Blocks this thread until the process exits.
[[noreturn]] inline void park_until_exit() noexcept {
  parked().fetch_add(1, std::memory_order_acq_rel);
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// The atexit callback (GIL held): from now on no kernel takes the GIL; wait, with the GIL
// released, until every kernel in flight has parked or returned.
inline void begin_exit() {
  exiting_flag().store(true, std::memory_order_release);
  if (in_flight().load(std::memory_order_acquire) == 0) return;
  pybind11::gil_scoped_release release;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (in_flight().load(std::memory_order_acquire) > parked().load(std::memory_order_acquire) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// pybind11::gil_scoped_release that does not take the GIL back once the interpreter exits.
class ReleaseGil {
 public:
  ReleaseGil() { in_flight().fetch_add(1, std::memory_order_acq_rel); }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;
  ~ReleaseGil() {
    if (finalizing()) {
      release_.disarm();
      park_until_exit();
    }
    in_flight().fetch_sub(1, std::memory_order_acq_rel);
  }

 private:
  pybind11::gil_scoped_release release_;
};

}  // namespace matchar_py
