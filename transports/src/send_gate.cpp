#include "mycelium/transports/send_gate.hpp"

namespace mycelium::transports {

direct_writer::~direct_writer() = default;

namespace {

thread_local bool no_block_flag = false;

} // namespace

send_gate::send_gate(size_t capacity, overflow_policy policy,
                     std::chrono::nanoseconds block_timeout,
                     std::function<void()> on_overflow)
  : capacity_(capacity == 0 ? 1 : capacity),
    guard_(policy, block_timeout, std::move(on_overflow)) {
}

bool send_gate::blocking_allowed() noexcept {
  return !no_block_flag;
}

send_gate::no_block_scope::no_block_scope() noexcept : prev_(no_block_flag) {
  no_block_flag = true;
}

send_gate::no_block_scope::~no_block_scope() {
  no_block_flag = prev_;
}

bool send_gate::admit_slow() noexcept {
  // The fast path's increment overshot: give the slot back first.
  release(1);
  std::chrono::steady_clock::time_point deadline;
  bool may_wait = !no_block_flag && !(drainer_ != nullptr && runs_turns_of(drainer_));
  if (guard_.on_full(may_wait, deadline) == overflow_guard::verdict::refuse)
    return false;
  std::unique_lock<std::mutex> guard{mtx_};
  waiters_.fetch_add(1, std::memory_order_acq_rel);
  for (;;) {
    if (depth_.fetch_add(1, std::memory_order_acq_rel) < capacity_) {
      waiters_.fetch_sub(1, std::memory_order_acq_rel);
      return true;
    }
    depth_.fetch_sub(1, std::memory_order_acq_rel);
    if (cv_.wait_until(guard, deadline) == std::cv_status::timeout
        && depth_.load(std::memory_order_acquire) >= capacity_) {
      waiters_.fetch_sub(1, std::memory_order_acq_rel);
      guard_.timed_out();
      return false;
    }
  }
}

void send_gate::wake() noexcept {
  // Taking the lock orders the notify after a waiter's depth check, so a
  // release between its check and its wait is never missed.
  std::lock_guard<std::mutex> guard{mtx_};
  cv_.notify_all();
}

} // namespace mycelium::transports
