// The messages a link's brokers post to themselves (timers, the bus's
// interest watch, the connector's connect results, and the callbacks of
// send gates and shared-memory rings that run on other threads), and the
// one way to post them: anonymously.

#pragma once

#include <chrono>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/atom.hpp>
#include <caf/io/broker.hpp>
#include <caf/send.hpp>
#include <caf/weak_intrusive_ptr.hpp>

namespace mycelium::transports::detail {

using tick_atom = caf::atom_constant<caf::atom("mlTick")>;
using interest_atom = caf::atom_constant<caf::atom("mlInterest")>;
using connect_atom = caf::atom_constant<caf::atom("mlConnect")>;
using connected_atom = caf::atom_constant<caf::atom("mlConnOk")>;
using connect_failed_atom = caf::atom_constant<caf::atom("mlConnFail")>;
using overflow_atom = caf::atom_constant<caf::atom("mlOverflow")>;
using ring_fault_atom = caf::atom_constant<caf::atom("mlRingErr")>;
/// Bytes the loop's socket poller read ended the connection (closed from
/// the broker's own message handling, with the connection's epoch).
using polled_close_atom = caf::atom_constant<caf::atom("mlPollEnd")>;

/// The broker as a destination. Messages to self go without a sender: CAF
/// 0.17's broker cleanup does not drain the mailbox, so a pending message
/// whose sender is the broker itself would keep the terminated broker alive
/// forever (found by LSan). Hence only `anon_send` and `delayed_anon_send`
/// to this handle, as the helpers below do.
/// Thread-safety: from the broker's own handlers.
inline caf::actor self_handle(caf::io::broker* self) {
  return caf::actor_cast<caf::actor>(self);
}

/// Posts `xs` to `self` (anonymously, see self_handle).
/// Thread-safety: from the broker's own handlers.
template <class... Ts>
void post_to_self(caf::io::broker* self, Ts&&... xs) {
  caf::anon_send(self_handle(self), std::forward<Ts>(xs)...);
}

/// Posts `xs` to `self` after `delay` (anonymously, see self_handle).
/// Thread-safety: from the broker's own handlers.
template <class Rep, class Period, class... Ts>
void post_to_self_later(caf::io::broker* self,
                        std::chrono::duration<Rep, Period> delay, Ts&&... xs) {
  caf::delayed_anon_send(self_handle(self), delay, std::forward<Ts>(xs)...);
}

/// Posts `xs` to the broker behind `weak` if it still lives (anonymously):
/// for callbacks that may run on any thread and outlive the broker.
/// Thread-safety: any thread.
template <class... Ts>
void post_if_alive(const caf::weak_actor_ptr& weak, Ts&&... xs) {
  if (auto p = weak.lock())
    caf::anon_send(caf::actor_cast<caf::actor>(p), std::forward<Ts>(xs)...);
}

} // namespace mycelium::transports::detail
