#include "mycelium/bus/send_gate.hpp"

namespace mycelium {

namespace {

thread_local bool no_block_flag = false;

} // namespace

const char* to_string(overflow_policy x) noexcept {
  switch (x) {
    case overflow_policy::block: return "block";
    case overflow_policy::drop_newest: return "drop_newest";
    case overflow_policy::disconnect: return "disconnect";
  }
  return "<invalid overflow_policy>";
}

caf::error parse_overflow_policy(const std::string& text, overflow_policy& out) {
  for (auto p : {overflow_policy::block, overflow_policy::drop_newest,
                 overflow_policy::disconnect})
    if (text == to_string(p)) {
      out = p;
      return caf::none;
    }
  return make_error(errc::config_invalid,
                    "unknown overflow policy '" + text
                      + "': use block, drop_newest or disconnect");
}

send_gate::send_gate(size_t capacity, overflow_policy policy,
                     std::chrono::nanoseconds block_timeout,
                     std::function<void()> on_overflow)
  : capacity_(capacity == 0 ? 1 : capacity), policy_(policy),
    block_timeout_(block_timeout), on_overflow_(std::move(on_overflow)) {
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
  switch (policy_) {
    case overflow_policy::drop_newest:
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    case overflow_policy::disconnect:
      dropped_.fetch_add(1, std::memory_order_relaxed);
      if (!overflowed_.exchange(true, std::memory_order_acq_rel)) {
        disconnects_.fetch_add(1, std::memory_order_relaxed);
        if (on_overflow_)
          on_overflow_();
      }
      return false;
    case overflow_policy::block:
      break;
  }
  if (no_block_flag || block_timeout_.count() <= 0) {
    back_pressured_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  auto deadline = std::chrono::steady_clock::now() + block_timeout_;
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
      back_pressured_.fetch_add(1, std::memory_order_relaxed);
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

} // namespace mycelium
