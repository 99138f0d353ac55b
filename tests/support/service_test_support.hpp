#pragma once

// Helpers shared by the doctest suites that drive services from the test
// thread: a factory for a service class, a blocking actor subscribed by hand,
// and a receive with a timeout. Test code only.

#include <chrono>

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include "mycelium/actors/node.hpp"

namespace mycelium::test_support {

/// How long `next` waits for a message.
constexpr auto receive_timeout = std::chrono::seconds(10);

template <class Svc>
service_factory factory_of() {
  return [](caf::actor_system& sys, service_context ctx) {
    return sys.spawn<Svc>(std::move(ctx));
  };
}

/// Subscribes a scoped (blocking) actor to T so the test thread can wait for
/// published messages.
template <class T>
subscription_ptr listen(node& n, caf::scoped_actor& self) {
  return n.bus().subscribe(T::type_id, T::type_name,
                           caf::actor_cast<caf::strong_actor_ptr>(self), "test");
}

/// The next T for `self`; fails the test after `receive_timeout`.
template <class T>
T next(caf::scoped_actor& self) {
  T result;
  bool got = false;
  self->receive([&](const T& x) { result = x; got = true; },
                caf::after(receive_timeout) >> [] {});
  REQUIRE_MESSAGE(got, "no " << T::type_name << " within the timeout");
  return result;
}

} // namespace mycelium::test_support
