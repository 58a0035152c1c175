// The one way the kernels run an OpenMP region: exceptions never cross the region (the
// first is kept and rethrown after it, std::bad_alloc included, so an allocation that
// fails inside a thread is a MemoryError, not an abort), and the calling thread polls for
// Ctrl-C between pieces of work (matchar::Interrupted after the region). Private to
// cpp/src: no Python, no Eigen.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "matchar/common.hpp"

namespace matchar::detail {

// Shared by the threads of one region. run() wraps each piece of work; finish() after
// the region rethrows the first exception or throws Interrupted.
class ParallelGuard {
 public:
  // Runs f() unless a stop was requested; an exception thrown by f is kept (the first
  // one) and stops the other threads at their next piece. Returns false if f did not
  // run or threw.
  template <class F>
  bool run(F&& f) noexcept {
    if (stopped()) return false;
    try {
      std::forward<F>(f)();
      return true;
    } catch (...) {
      fail(std::current_exception());
      return false;
    }
  }

  // From thread 0 of the team only: asks the embedding application (Python's Ctrl-C)
  // whether to stop. Cheap: poll_interrupt() rate-limits itself to ~every 50 ms.
  void poll() noexcept {
    if (omp_get_thread_num() != 0) return;
    try {
      if (poll_interrupt()) {
        interrupted_.store(true, std::memory_order_relaxed);
        stop_.store(true, std::memory_order_relaxed);
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  // run(f) then poll(): the common step of a loop body.
  template <class F>
  bool step(F&& f) noexcept {
    const bool ok = run(std::forward<F>(f));
    poll();
    return ok;
  }

  bool stopped() const noexcept { return stop_.load(std::memory_order_relaxed); }

  // Before each region that uses arrive() (a guard may serve several regions in turn).
  void begin_region() noexcept { arrived_.store(0, std::memory_order_relaxed); }

  // Called by every thread of a team of `team` when it has no work left (after an
  // `omp for nowait`): thread 0 keeps polling for Ctrl-C until all have arrived, so a
  // stop is noticed while other threads still work on long items (they check stopped()).
  void arrive(int team) noexcept {
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    if (omp_get_thread_num() != 0) return;
    for (int spins = 0; arrived_.load(std::memory_order_acquire) < team; ++spins) {
      poll();
      // a short spin for the common case (the others finish within microseconds), then
      // sleep, so that a busy machine does not lose a core to this wait
      if (spins < 64)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  void fail(std::exception_ptr e) noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::move(e);
    }
    stop_.store(true, std::memory_order_relaxed);
  }

  // After the region, on the calling thread.
  void finish() {
    if (error_) std::rethrow_exception(error_);
    if (interrupted_.load()) throw Interrupted();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> interrupted_{false};
  std::atomic<int> arrived_{0};
  std::mutex mutex_;
  std::exception_ptr error_;
};

enum class Schedule { Static, Dynamic };

// Runs body(i, state) for every i in [0, n) on `threads` threads (never more than n),
// with state = make_state() made once per thread inside the guard, so that a per-thread
// buffer that cannot be allocated is a MemoryError. Static: each thread gets one
// contiguous range (deterministic per-thread partial sums); Dynamic: chunks of `chunk`.
// Thread 0 polls for Ctrl-C after each of its iterations and while it waits for the
// others. A body that runs long can check guard.stopped() and return early. The caller
// calls guard.finish() after this returns (parallel_for below does).
template <class MakeState, class Body>
void parallel_for(ParallelGuard& guard, index_t n, int threads, Schedule schedule, index_t chunk,
                  MakeState&& make_state, Body&& body) {
  if (n <= 0) return;
  const int team = static_cast<int>(std::max<index_t>(1, std::min<index_t>(threads, n)));
  const int dyn_chunk = static_cast<int>(std::max<index_t>(1, chunk));
  using State = decltype(make_state());
  guard.begin_region();
#pragma omp parallel num_threads(team)
  {
    std::optional<State> state;
    guard.run([&] { state.emplace(make_state()); });
    if (schedule == Schedule::Static) {
#pragma omp for schedule(static) nowait
      for (index_t i = 0; i < n; ++i) {
        if (state) guard.step([&] { body(i, *state); });
      }
    } else {
#pragma omp for schedule(dynamic, dyn_chunk) nowait
      for (index_t i = 0; i < n; ++i) {
        if (state) guard.step([&] { body(i, *state); });
      }
    }
    guard.arrive(omp_get_num_threads());
  }
}

// The same with its own guard, finished (first exception or Interrupted rethrown).
template <class MakeState, class Body>
void parallel_for(index_t n, int threads, Schedule schedule, index_t chunk, MakeState&& make_state,
                  Body&& body) {
  ParallelGuard guard;
  parallel_for(guard, n, threads, schedule, chunk, std::forward<MakeState>(make_state),
               std::forward<Body>(body));
  guard.finish();
}

// Without per-thread state: body(i).
template <class Body>
void parallel_for(index_t n, int threads, Schedule schedule, index_t chunk, Body&& body) {
  parallel_for(n, threads, schedule, chunk, [] { return 0; }, [&](index_t i, int&) { body(i); });
}

}  // namespace matchar::detail
