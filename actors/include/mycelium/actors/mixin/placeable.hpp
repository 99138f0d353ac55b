#pragma once

#include <chrono>
#include <ratio>
#include <type_traits>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/detail/type_traits.hpp>
#include <caf/execution_unit.hpp>
#include <caf/group.hpp>
#include <caf/message_id.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/network/multiplexer.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/resumable.hpp>

#include "mycelium/actors/detail/participant_core.hpp"
#include "mycelium/actors/loop_clock.hpp"
#include "mycelium/actors/loop_thread.hpp"
#include "mycelium/actors/placement.hpp"
#include "mycelium/bus/port.hpp"

namespace mycelium::mixin {

/// Lets an event-based actor run either on CAF's worker pool or on the
/// node's I/O loop (the middleman's multiplexer thread), chosen per
/// instance at spawn, as a CAF-style mixin over `bus_participant` (which
/// provides `where()`).
///
/// On the loop the actor poses as an I/O actor, the way CAF's brokers do
/// (`abstract_broker::enqueue` and `launch` hand the multiplexer to
/// `scheduled_actor`): every enqueue, whichever thread it comes from,
/// schedules it on the multiplexer, which resumes it on its own thread. An
/// enqueue from the loop thread itself (a link delivering a frame, another
/// loop service publishing) is resumed on the same thread in the same turn
/// of the loop, without a system call.
///
/// Better still, a loop-placed instance has its own `port` on the bus: when
/// the bus delivers on the loop's thread while the instance is idle (mailbox
/// empty, no handler running, not terminating), the handler runs at once as
/// a function call, in place of mailbox element, message and resume. Order
/// per publisher is kept: a non-empty mailbox always takes the message.
///
/// The port is a member, not a second base class: CAF's worker casts every
/// job it resumes from `resumable*` to `abstract_actor*` (a cross-cast),
/// and a second base makes that search visit one more branch of the class
/// graph, on every resume of every service, loop or pool.
///
/// Thread-safety: as CAF actors; `enqueue` and `offer` from any thread
/// (`offer` leaves the message to the mailbox off the loop's thread).
template <class Base, class Subtype>
class placeable : public Base {
public:
  template <class... Ts>
  explicit placeable(Ts&&... xs) : Base(std::forward<Ts>(xs)...) {
    if (this->where() == placement::loop) {
      loop_ = &this->home_system().middleman().backend();
      clock_ = dynamic_cast<loop_clock*>(loop_);
    }
  }

  using Base::delayed_send; // to groups; CAF's for everything else below

  /// As CAF's `delayed_send`, except that on the loop a message to this
  /// instance itself is timed by the loop (`loop_clock`), which delivers
  /// it on its own thread: no wake-up of CAF's timer thread, whose run on
  /// a pinned node's CPU would delay the handlers there. Any other
  /// message, and every one of a pool instance, goes through CAF's clock.
  template <caf::message_priority P = caf::message_priority::normal, class Rep = int,
            class Period = std::ratio<1>, class Dest = caf::actor, class... Ts>
  caf::detail::enable_if_t<!std::is_same<Dest, caf::group>::value>
  delayed_send(const Dest& dest, std::chrono::duration<Rep, Period> rel_timeout, Ts&&... xs) {
    if (clock_ != nullptr && runs_turns_of(loop_)
        && caf::actor_cast<caf::abstract_actor*>(dest) == static_cast<caf::abstract_actor*>(this)) {
      static_assert(sizeof...(Ts) > 0, "no message to send");
      auto due = caf::actor_clock::clock_type::now() + rel_timeout;
      clock_->schedule_message(due, caf::actor_cast<caf::strong_actor_ptr>(this->ctrl()),
                               caf::make_mailbox_element(this->ctrl(), caf::make_message_id(P),
                                                         caf::no_stages,
                                                         std::forward<Ts>(xs)...));
      return;
    }
    Base::template delayed_send<P>(dest, rel_timeout, std::forward<Ts>(xs)...);
  }

  /// Runs the handler of `type_id` now (`handled`: it counts `delivered`),
  /// or leaves the message to the mailbox (`enqueue`).
  offer_result offer(uint32_t type_id, const void* value) noexcept {
    if (loop_ == nullptr || !runs_turns_of(loop_) || ending() || !this->mailbox().blocked())
      return offer_result::enqueue;
    auto& core = this->participant_core();
    if (!core.run_direct(type_id, value))
      return offer_result::enqueue;
    // A failure must surface inside CAF's resume (exception handler,
    // supervisor): a wake-up message rethrows it there.
    if (core.failed_directly()) {
      enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                        direct_wake_atom::value),
              loop_);
      return offer_result::handled;
    }
    // `quit` only marks the actor as shutting down; CAF terminates an actor
    // at the end of the resume that quit, and a later resume refuses an
    // actor without behavior (`activate`), so it would never end. Nobody
    // resumes this instance now (this is its loop's thread, its mailbox is
    // empty), so finish the termination here, as that resume would have.
    if (ending()) {
      this->context(loop_);
      this->finalize();
    }
    return offer_result::handled;
  }

  using Base::enqueue;

  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override {
    Base::enqueue(std::move(ptr), loop_ != nullptr ? loop_ : eu);
  }

  void launch(caf::execution_unit* eu, bool lazy, bool hide) override {
    Base::launch(loop_ != nullptr ? loop_ : eu, lazy, hide);
  }

  /// On the loop, one resume handles at most `loop_batch` messages, then the
  /// instance goes to the back of the loop's queue: a service with a long
  /// mailbox (a flood from another thread) must not keep the loop from its
  /// rings, sockets and heartbeats for the whole backlog (CAF's default
  /// throughput is unlimited).
  static constexpr size_t loop_batch = 256;

  caf::resumable::resume_result resume(caf::execution_unit* ctx,
                                       size_t max_throughput) override {
    if (loop_ != nullptr && max_throughput > loop_batch)
      max_throughput = loop_batch;
    return Base::resume(ctx, max_throughput);
  }

  caf::resumable::subtype_t subtype() const override {
    return loop_ != nullptr ? caf::resumable::io_actor : Base::subtype();
  }

  /// Whether `quit` was called or the actor terminated.
  bool ending() const noexcept {
    return this->getf(caf::abstract_actor::is_shutting_down_flag
                      | caf::abstract_actor::is_terminated_flag);
  }

  /// Whether this instance runs on the I/O loop.
  bool on_loop() const noexcept { return loop_ != nullptr; }

protected:
  port* direct_port() noexcept override {
    return loop_ != nullptr ? &port_ : nullptr;
  }

private:
  /// The instance's entry on the bus: forwards each offer to `offer`.
  class direct_entry final : public port {
  public:
    explicit direct_entry(placeable* owner) noexcept : owner_(owner) {
    }
    offer_result offer(uint32_t type_id, const void* value) noexcept override {
      return owner_->offer(type_id, value);
    }

  private:
    placeable* owner_;
  };

  caf::io::network::multiplexer* loop_ = nullptr; ///< for loop placement
  loop_clock* clock_ = nullptr;                   ///< `loop_`, if it times messages
  direct_entry port_{this};
};

} // namespace mycelium::mixin
