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
//
// A thread about to take the GIL back first counts itself in acquiring(), then reads the
// exit flag; begin_exit first sets the flag, then reads acquiring() (all sequentially
// consistent). So either the thread sees the flag and does not take the GIL, or
// begin_exit sees the thread and, with the GIL released, waits until the thread holds it.
// Without this a thread that read the flag just before it was set could be descheduled
// past the whole exit and take the GIL during finalization (once in 30 exits on a
// heavily loaded machine).
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

// Kernel calls that released the GIL (in flight), those parked for the exit, and threads
// of ours between reading the exit flag and holding the GIL.
inline std::atomic<int>& in_flight() {
  static std::atomic<int> n{0};
  return n;
}
inline std::atomic<int>& parked() {
  static std::atomic<int> n{0};
  return n;
}
inline std::atomic<int>& acquiring() {
  static std::atomic<int> n{0};
  return n;
}

// Whether the GIL must not be taken: the interpreter is exiting, finalizing or gone.
inline bool finalizing() noexcept {
  if (exiting_flag().load(std::memory_order_seq_cst)) return true;
  if (!Py_IsInitialized()) return true;
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// Blocks this thread until the process exits.
[[noreturn]] inline void park_until_exit() noexcept {
  parked().fetch_add(1, std::memory_order_seq_cst);
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// Takes the GIL back unless the interpreter exits: true with the GIL held, false without
// it (then the caller must not touch Python).
inline bool restore_gil(PyThreadState* state) noexcept {
  acquiring().fetch_add(1, std::memory_order_seq_cst);
  if (finalizing()) {
    acquiring().fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  PyEval_RestoreThread(state);
  acquiring().fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

// The atexit callback (GIL held): from now on no kernel takes the GIL. With the GIL
// released, wait until every thread that read the flag before it was set holds the GIL,
// and (at most 2 s) until every kernel in flight has parked or returned.
inline void begin_exit() {
  exiting_flag().store(true, std::memory_order_seq_cst);
  if (in_flight().load(std::memory_order_seq_cst) == 0 &&
      acquiring().load(std::memory_order_seq_cst) == 0)
    return;
  PyThreadState* state = PyEval_SaveThread();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    // such a thread waits for nothing but the GIL, released here: no deadline for it
    if (acquiring().load(std::memory_order_seq_cst) > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (in_flight().load(std::memory_order_seq_cst) <= parked().load(std::memory_order_seq_cst) ||
        std::chrono::steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  PyEval_RestoreThread(state);
}

// Releases the GIL for a kernel call (as pybind11::gil_scoped_release), and does not take
// it back once the interpreter exits: the thread parks instead.
class ReleaseGil {
 public:
  ReleaseGil() {
    in_flight().fetch_add(1, std::memory_order_seq_cst);
    state_ = PyEval_SaveThread();
  }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;
  ~ReleaseGil() {
    if (!restore_gil(state_)) park_until_exit();
    in_flight().fetch_sub(1, std::memory_order_seq_cst);
  }

 private:
  PyThreadState* state_ = nullptr;
};

}  // namespace matchar_py
