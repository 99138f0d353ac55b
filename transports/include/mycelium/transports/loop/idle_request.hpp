#pragma once

#include <memory>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "mycelium/transports/loop/idle_strategy.hpp"

namespace mycelium::transports {

class io_loop;

/// Keeps a node's I/O loop idling at least as eagerly as a strategy while
/// it lives, from outside the loop: what a node with loop-placed services
/// holds, since their messages from other threads (a Python service, a
/// pool service, a timer) reach them through the loop's inbox, and a loop
/// that blocks pays a pipe write and a thread wake-up for each (tens of
/// microseconds here). `io_loop::request_idle` is the loop-thread form.
///
/// Thread-safety: make and destroy it on any thread but the loop's, while
/// the actor system runs; the request itself is made and withdrawn on the
/// loop's thread (posted there).
class idle_request {
public:
  idle_request() = default;
  idle_request(idle_request&&) noexcept = default;
  idle_request& operator=(idle_request&& other) noexcept;
  ~idle_request();

  /// Asks the loop of `sys` for `idle`. Fails with `config_invalid` when
  /// `sys` runs no `io_loop` (`load_io_loop` was not called).
  static caf::expected<idle_request> make(caf::actor_system& sys, idle_strategy idle);

  /// Withdraws the request (idempotent).
  void reset();

  explicit operator bool() const noexcept { return state_ != nullptr; }

private:
  struct state;
  io_loop* loop_ = nullptr;
  std::shared_ptr<state> state_;
};

} // namespace mycelium::transports
