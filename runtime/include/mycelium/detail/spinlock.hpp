#pragma once

#include <atomic>
#include <thread>

#include "mycelium/detail/cpu_relax.hpp"

namespace mycelium::detail {

/// A test-and-test-and-set lock for critical sections of a few dozen
/// nanoseconds (one ring write): acquiring costs one atomic exchange and
/// releasing a plain store, where std::mutex pays two locked instructions.
/// Waiters spin with `cpu_relax` and yield the CPU after a while, so a
/// holder preempted on a shared CPU gets to run. Meets Lockable, so it works
/// with std::lock_guard and std::unique_lock.
///
/// Thread-safety: that is its purpose; not recursive.
class spinlock {
public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 128)
          cpu_relax();
        else
          std::this_thread::yield();
      }
    }
  }

  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed)
           && !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
  std::atomic<bool> locked_{false};
};

} // namespace mycelium::detail
