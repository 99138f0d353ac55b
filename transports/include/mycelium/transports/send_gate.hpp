#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <caf/io/network/multiplexer.hpp>

#include "mycelium/actors/loop_thread.hpp"
#include "mycelium/bus/overflow_guard.hpp"
#include "mycelium/bus/port.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/transports/direct_writer.hpp"

namespace mycelium::transports {

/// Bounds the messages in flight towards one socket link, and is the link's
/// port on the bus: a publisher claims a slot before the bus enqueues into
/// the link's mailbox, the link releases the slot once the frame has been
/// handed to the operating system (or was discarded and counted). When no
/// slot is free its `overflow_guard` applies the policy. A publisher on the
/// draining thread (the link's I/O loop) hands an admitted message to the
/// link's `direct_writer` instead of its mailbox.
///
/// Thread-safety: `admit` (and `offer`) may run on any number of publisher
/// threads at once; `release`, `rearm` and the counters are safe from any
/// thread. Waiting publishers block on a condition variable, never spin.
class send_gate final : public port {
public:
  /// `on_overflow` runs once per overflow episode under policy `disconnect`
  /// (on the publisher's thread); it should only post a message to the link.
  send_gate(size_t capacity, overflow_policy policy,
            std::chrono::nanoseconds block_timeout,
            std::function<void()> on_overflow = {});

  send_gate(const send_gate&) = delete;
  send_gate& operator=(const send_gate&) = delete;

  /// Claims one slot. Returns false when the message must not be enqueued
  /// (it was counted as `dropped`, `back_pressured` or `overflowed`).
  bool admit() noexcept {
    if (depth_.fetch_add(1, std::memory_order_acq_rel) < capacity_)
      return true;
    return admit_slow();
  }

  /// Admitted: written by the link's `direct_writer` when the caller is the
  /// draining thread, else enqueued by the bus into the link's mailbox.
  /// Refused by the overflow policy otherwise.
  offer_result offer(uint32_t type_id, const void* value) noexcept override {
    if (!admit())
      return offer_result::refused;
    // The thread first: only the draining thread reads `writer_`.
    if (drainer_ != nullptr && runs_turns_of(drainer_) && writer_ != nullptr) {
      writer_->write(type_id, value);
      return offer_result::delivered;
    }
    return offer_result::enqueue;
  }

  /// Installs (or, with null, removes) the writer that `offer` hands
  /// messages to on the draining thread. Draining thread only.
  void write_directly_to(direct_writer* w) noexcept { writer_ = w; }

  /// Returns `n` slots (frames written or discarded).
  void release(size_t n = 1) noexcept {
    depth_.fetch_sub(n, std::memory_order_acq_rel);
    if (waiters_.load(std::memory_order_acquire) > 0)
      wake();
  }

  /// Names the loop that drains this gate (a socket link's I/O loop): a
  /// publisher that runs its turns (its thread, or one it is lent to) never
  /// waits under policy `block`, since it would wait for itself (a
  /// loop-placed service publishing into a socket link); a full gate then
  /// counts `back_pressured` at once. Call before the gate is shared.
  void drained_by(const caf::io::network::multiplexer* loop) noexcept { drainer_ = loop; }

  /// Re-arms policy `disconnect` after the link reconnected.
  void rearm() noexcept { guard_.rearm(); }

  size_t capacity() const noexcept { return capacity_; }
  overflow_policy policy() const noexcept { return guard_.policy(); }
  size_t depth() const noexcept { return depth_.load(std::memory_order_relaxed); }

  /// The policy and its counters (dropped, back_pressured, disconnects).
  const overflow_guard& overflow() const noexcept { return guard_; }

  /// Messages refused by `drop_newest` or `disconnect`.
  uint64_t dropped() const noexcept { return guard_.dropped(); }
  /// Messages refused by `block` after the timeout (or from a thread that
  /// must not block, see `no_block_scope`).
  uint64_t back_pressured() const noexcept { return guard_.back_pressured(); }
  /// Overflow episodes that triggered a disconnect.
  uint64_t disconnects() const noexcept { return guard_.disconnects(); }

  /// Whether this thread may wait for room (false inside a `no_block_scope`).
  static bool blocking_allowed() noexcept;

  /// While alive on a thread, `admit` on that thread never waits (links
  /// forwarding into other links run on CAF's I/O thread and must not stall
  /// it); a full `block` gate then counts `back_pressured` at once.
  class no_block_scope {
  public:
    no_block_scope() noexcept;
    ~no_block_scope();
    no_block_scope(const no_block_scope&) = delete;
    no_block_scope& operator=(const no_block_scope&) = delete;

  private:
    bool prev_;
  };

private:
  bool admit_slow() noexcept;
  void wake() noexcept;

  const size_t capacity_;
  overflow_guard guard_;
  alignas(64) std::atomic<size_t> depth_{0};
  alignas(64) std::atomic<uint32_t> waiters_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
  const caf::io::network::multiplexer* drainer_ = nullptr;
  direct_writer* writer_ = nullptr; ///< read and written by the draining thread
};

} // namespace mycelium::transports
