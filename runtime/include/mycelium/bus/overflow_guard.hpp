#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <caf/error.hpp>

namespace mycelium {

/// What a link does when its bound is full (a socket link's send queue, a
/// shared-memory link's ring).
enum class overflow_policy : uint8_t {
  block,       ///< the publisher waits up to a timeout, then `back_pressured`
  drop_newest, ///< the new message is dropped and counted
  disconnect,  ///< the slow peer is disconnected (the message is counted)
};

/// "block", "drop_newest" or "disconnect".
const char* to_string(overflow_policy x) noexcept;

/// Parses the names above; `config_invalid` naming the accepted values else.
caf::error parse_overflow_policy(const std::string& text, overflow_policy& out);

/// The overflow policy of one link connection, applied in one place with one
/// set of counters, whatever the bound is: a socket link's send gate
/// (message slots) and the shared-memory channel (ring bytes), both in
/// transports/, ask it what to do when they are full.
///
/// Thread-safety: every member may run on any number of threads at once.
class overflow_guard {
public:
  /// `on_disconnect` runs once per overflow episode under `disconnect` (on
  /// the publisher's thread); it should only post a message to the link.
  overflow_guard(overflow_policy policy, std::chrono::nanoseconds block_timeout,
                 std::function<void()> on_disconnect = {});

  overflow_guard(const overflow_guard&) = delete;
  overflow_guard& operator=(const overflow_guard&) = delete;

  enum class verdict : uint8_t {
    wait,   ///< policy block: wait for room until the returned deadline
    refuse, ///< do not send (counted)
  };

  /// The bound is full for one message. `may_wait` is false where the
  /// publisher must not block (an I/O loop, see transports' `no_block_scope`):
  /// then `block` counts `back_pressured` at once. On `wait`, `deadline` is
  /// set; if room does not come by then, call `timed_out`.
  [[nodiscard]] verdict on_full(bool may_wait,
                                std::chrono::steady_clock::time_point& deadline) noexcept;

  /// Policy `block`: the wait ended without room (counts `back_pressured`).
  void timed_out() noexcept { back_pressured_.fetch_add(1, std::memory_order_relaxed); }

  /// Re-arms policy `disconnect` after the link reconnected.
  void rearm() noexcept { overflowed_.store(false, std::memory_order_release); }

  overflow_policy policy() const noexcept { return policy_; }

  /// Messages refused by `drop_newest` or `disconnect`.
  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// Messages refused by `block` after the timeout (or at once, see `on_full`).
  uint64_t back_pressured() const noexcept {
    return back_pressured_.load(std::memory_order_relaxed);
  }
  /// Overflow episodes that triggered a disconnect.
  uint64_t disconnects() const noexcept {
    return disconnects_.load(std::memory_order_relaxed);
  }

private:
  const overflow_policy policy_;
  const std::chrono::nanoseconds block_timeout_;
  std::function<void()> on_disconnect_;
  std::atomic<bool> overflowed_{false};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> back_pressured_{0};
  std::atomic<uint64_t> disconnects_{0};
};

} // namespace mycelium
