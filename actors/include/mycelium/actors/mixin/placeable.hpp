#pragma once

#include <caf/execution_unit.hpp>
#include <caf/io/middleman.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/resumable.hpp>

#include "mycelium/actors/placement.hpp"

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
/// Thread-safety: as CAF actors; `enqueue` from any thread.
template <class Base, class Subtype>
class placeable : public Base {
public:
  template <class... Ts>
  explicit placeable(Ts&&... xs) : Base(std::forward<Ts>(xs)...) {
    if (this->where() == placement::loop)
      loop_ = &this->home_system().middleman().backend();
  }

  using Base::enqueue;

  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override {
    Base::enqueue(std::move(ptr), loop_ != nullptr ? loop_ : eu);
  }

  void launch(caf::execution_unit* eu, bool lazy, bool hide) override {
    Base::launch(loop_ != nullptr ? loop_ : eu, lazy, hide);
  }

  caf::resumable::subtype_t subtype() const override {
    return loop_ != nullptr ? caf::resumable::io_actor : Base::subtype();
  }

  /// Whether this instance runs on the I/O loop.
  bool on_loop() const noexcept { return loop_ != nullptr; }

private:
  caf::execution_unit* loop_ = nullptr; ///< the multiplexer, for loop placement
};

} // namespace mycelium::mixin
