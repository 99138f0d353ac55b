#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <caf/message.hpp>

namespace mycelium::python {

/// One thing for a Python consumer to handle: a message of a subscribed
/// type, a request to answer, or the order to stop.
struct inbox_event {
  enum kind_t : uint8_t { message = 0, request = 1, stop = 2 };
  kind_t kind = message;
  uint32_t type_id = 0;
  uint64_t request_id = 0;
  std::vector<uint8_t> payload; ///< TLV bytes, when `value` is empty
  /// message: the C++ struct itself (the Python bridge has its type); the
  /// consumer makes the Python object from it
  caf::message value;
  std::string text; ///< stop: the reason ("" for a normal stop)
};

/// The queue between the C++ side of the bus (any publishing thread) and
/// one Python consumer thread. Bounded: a message that finds it full is
/// dropped and counted (`dropped`), with a log line at most once a second;
/// requests and the stop order are never dropped. The consumer sleeps on a
/// condition variable, or (asyncio) on an eventfd that becomes readable when
/// the queue stops being empty.
///
/// Thread-safety: every member function is thread-safe; `pop` and
/// `try_pop` belong to one consumer at a time.
class inbox {
public:
  inbox(std::string owner, size_t capacity);
  ~inbox();
  inbox(const inbox&) = delete;
  inbox& operator=(const inbox&) = delete;

  void push_message(uint32_t type_id, const uint8_t* p, size_t n);
  /// A message as the C++ struct (`msg` holds one value of `type_id`).
  void push_value(uint32_t type_id, caf::message msg);
  void push_request(uint64_t id, uint32_t type_id, const uint8_t* p, size_t n);
  void push_stop(std::string reason);

  /// Waits up to `timeout` for an event; false on timeout. With `spin`
  /// set, polls the queue for that long before it sleeps (no wake-up
  /// system call on either side when an event comes within it; costs a
  /// CPU meanwhile).
  bool pop(inbox_event& out, std::chrono::nanoseconds timeout,
           std::chrono::nanoseconds spin = std::chrono::nanoseconds{0});

  /// Takes an event if one is there.
  bool try_pop(inbox_event& out);

  /// An eventfd that is readable while events wait (created on first call;
  /// the consumer reads it empty before draining with `try_pop`).
  int event_fd();

  /// The consumer finished (ran on_stop): wakes `await_finished`.
  void finish();

  /// Waits for `finish`; false after `timeout`.
  bool await_finished(std::chrono::nanoseconds timeout);

  /// Whether events wait (one atomic load; any thread).
  bool has_events() const noexcept { return count_.load(std::memory_order_acquire) > 0; }

  size_t size() const;
  uint64_t dropped() const;
  uint64_t high_water() const;
  size_t capacity() const noexcept { return capacity_; }

private:
  void push(inbox_event&& ev, bool droppable);

  std::string owner_;
  size_t capacity_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;      ///< events arrived
  std::atomic<size_t> count_{0};    ///< events_.size(), readable without the lock
  std::atomic<int> sleepers_{0};    ///< consumers waiting on cv_
  std::condition_variable done_cv_; ///< the consumer finished
  std::deque<inbox_event> events_;
  uint64_t dropped_ = 0;
  uint64_t unlogged_drops_ = 0;
  size_t high_water_ = 0;
  std::chrono::steady_clock::time_point last_drop_log_{};
  int efd_ = -1;
  bool finished_ = false;
};

} // namespace mycelium::python
