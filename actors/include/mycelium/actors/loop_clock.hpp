#pragma once

#include <caf/actor_clock.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/mailbox_element.hpp>

namespace mycelium {

/// A node's I/O loop that times messages itself (transports::io_loop is
/// one): a loop-placed service's `delayed_send` to itself goes here instead
/// of to CAF's timer thread (mixin::placeable). The loop delivers what is
/// due on the thread that runs its turns, and bounds its sleep by the
/// earliest due time, so no other thread is woken for the timer: on a
/// pinned node, CAF's timer thread would run on the CPU of the services it
/// serves (docs/benchmarks.md, "The trading system pinned").
///
/// Thread-safety: `schedule_message` on a thread that runs the loop's turns
/// (`runs_turns_of`) only.
class loop_clock {
public:
  virtual ~loop_clock();

  /// Enqueues `content` to `receiver` once `due` has come (at once if it
  /// has), in due order; messages due at the same time in the order
  /// scheduled.
  virtual void schedule_message(caf::actor_clock::time_point due, caf::strong_actor_ptr receiver,
                                caf::mailbox_element_ptr content) = 0;
};

} // namespace mycelium
