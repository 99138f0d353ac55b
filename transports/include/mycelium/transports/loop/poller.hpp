#pragma once

#include <cstddef>

namespace mycelium::transports {

class io_loop;

/// Something the node's I/O loop checks on every turn without a system call:
/// the incoming ring of a shared-memory link, and whatever else can tell
/// cheaply whether it has work (in the spirit of Seastar's pollers). Sockets
/// are not pollers: the loop polls them all at once through epoll.
///
/// Thread-safety: every member runs on the loop's thread.
class poller {
public:
  virtual ~poller();

  /// Does a bounded batch of work (so that one busy source cannot starve the
  /// others) and returns how many items it handled; 0 means idle.
  virtual size_t poll() = 0;

  /// The loop is about to sleep: arrange to be woken (e.g. tell the producer
  /// to ring the doorbell), then re-check. Returns false if work arrived
  /// meanwhile, and then the loop does not sleep. Must be cheap.
  virtual bool arm() noexcept = 0;

  /// The loop woke up (or did not sleep after all): undo `arm`.
  virtual void disarm() noexcept = 0;
};

/// Keeps a poller, or an idle request, registered with an `io_loop` for its
/// lifetime (RAII): the destructor deregisters it, also from inside the
/// poller's own `poll`. Movable, not copyable. Loop thread only.
class loop_registration {
public:
  loop_registration() = default;
  loop_registration(io_loop* loop, size_t slot) noexcept : loop_(loop), slot_(slot) {}
  loop_registration(loop_registration&& other) noexcept;
  loop_registration& operator=(loop_registration&& other) noexcept;
  loop_registration(const loop_registration&) = delete;
  loop_registration& operator=(const loop_registration&) = delete;
  ~loop_registration();

  /// Deregisters now (idempotent).
  void reset() noexcept;

  explicit operator bool() const noexcept { return loop_ != nullptr; }

private:
  io_loop* loop_ = nullptr;
  size_t slot_ = 0;
};

} // namespace mycelium::transports
