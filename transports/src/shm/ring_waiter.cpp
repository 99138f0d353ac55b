#include "mycelium/transports/shm/ring_waiter.hpp"

#include "mycelium/detail/cpu_relax.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mycelium::transports::shm {

namespace {

long futex(std::atomic<uint32_t>* addr, int op, uint32_t val,
           const timespec* timeout) noexcept {
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op, val, timeout,
                   nullptr, 0);
}

} // namespace

bool wait_for_data(ring_reader& reader, ring_control& ctl, transports::wait_mode mode,
                   std::chrono::nanoseconds spin,
                   std::chrono::nanoseconds timeout) noexcept {
  if (reader.maybe_ready())
    return true;
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + timeout;
  if (mode != wait_mode::block) {
    auto spin_end = mode == wait_mode::busy_poll ? deadline : start + spin;
    for (uint32_t i = 0;; ++i) {
      if (reader.maybe_ready())
        return true;
      mycelium::detail::cpu_relax();
      if ((i & 63) == 63) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
          return false;
        if (now >= spin_end)
          break;
      }
    }
  }
  for (;;) {
    auto seen = ctl.wakeups.load(std::memory_order_acquire);
    ctl.consumer_sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (reader.maybe_ready()) {
      ctl.consumer_sleeping.store(0, std::memory_order_relaxed);
      return true;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      ctl.consumer_sleeping.store(0, std::memory_order_relaxed);
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
    timespec ts{static_cast<time_t>(left.count() / 1000000000),
                static_cast<long>(left.count() % 1000000000)};
    futex(&ctl.wakeups, FUTEX_WAIT, seen, &ts); // returns at once if it changed
    ctl.consumer_sleeping.store(0, std::memory_order_relaxed);
    if (reader.maybe_ready())
      return true;
  }
}

void notify_consumer(ring_control& ctl) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst); // head before the check
  if (ctl.consumer_sleeping.load(std::memory_order_relaxed) != 0) {
    ctl.wakeups.fetch_add(1, std::memory_order_release);
    futex(&ctl.wakeups, FUTEX_WAKE, INT_MAX, nullptr);
  }
}

} // namespace mycelium::transports::shm
