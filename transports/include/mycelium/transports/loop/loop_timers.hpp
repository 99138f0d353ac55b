#pragma once

#include <cstddef>
#include <map>

#include <caf/actor_clock.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/execution_unit.hpp>
#include <caf/mailbox_element.hpp>

namespace mycelium::transports {

/// The messages an `io_loop` delivers at a time point (its `loop_clock`):
/// ordered by due time, ties in the order scheduled. The loop asks for the
/// earliest due time before it sleeps and fires what is due on every turn,
/// one clock read per turn while any is pending (in the spirit of
/// Seastar's reactor timers).
///
/// Thread-safety: the thread that runs the loop's turns only.
class loop_timers {
public:
  using time_point = caf::actor_clock::time_point;

  loop_timers() = default;
  loop_timers(const loop_timers&) = delete;
  loop_timers& operator=(const loop_timers&) = delete;

  void schedule(time_point due, caf::strong_actor_ptr receiver,
                caf::mailbox_element_ptr content);

  bool empty() const noexcept { return due_.empty(); }

  size_t size() const noexcept { return due_.size(); }

  /// The earliest due time; `time_point::max()` when none is pending.
  time_point next_due() const noexcept;

  /// Enqueues, with `eu` as the context, every message due by `now`, the
  /// earliest first; returns how many.
  size_t fire(time_point now, caf::execution_unit* eu);

  /// Drops every pending message (the loop is shutting down).
  void clear() noexcept { due_.clear(); }

private:
  struct entry {
    caf::strong_actor_ptr receiver;
    caf::mailbox_element_ptr content;
  };
  std::multimap<time_point, entry> due_;
};

} // namespace mycelium::transports
