#pragma once

#include <string>

#include <caf/event_based_actor.hpp>
#include <caf/extend.hpp>

#include "mycelium/actors/mixin/bus_participant.hpp"
#include "mycelium/actors/mixin/placeable.hpp"
#include "mycelium/actors/service_context.hpp"

namespace mycelium {

/// Base class of every user service: a CAF event-based actor with isolated
/// state that talks to the world only through its node's bus. Composed like
/// CAF's own actors: `mixin::bus_participant` gives publish, subscribe,
/// serve and request; `mixin::placeable` runs the instance on CAF's worker
/// pool or on the node's I/O loop, as `node::start` says (the class does
/// not change).
///
/// Override `on_start` to subscribe, serve requests and publish; override
/// `on_stop` to release resources. Handlers run one at a time on the actor
/// (never concurrently), so member state needs no locking. A handler that
/// throws terminates this instance with `errc::service_failed`; its
/// supervisor restarts a fresh instance per its restart policy.
///
/// ```
/// class strategy : public mycelium::service {
/// public:
///   using service::service;
///   void on_start() override {
///     subscribe<md::quote>([this](const md::quote& q) {
///       publish(md::order{q.symbol, md::side::buy, 1});
///     });
///   }
/// };
/// ```
class service
  : public caf::extend<caf::event_based_actor,
                       service>::with<mixin::bus_participant, mixin::placeable> {
public:
  using super = caf::extend<caf::event_based_actor,
                            service>::with<mixin::bus_participant, mixin::placeable>;

  service(caf::actor_config& cfg, service_context ctx);
  ~service() override;

  /// Called once per instance before any message is handled.
  virtual void on_start();

  /// Called once when the instance terminates (normally or by failure).
  virtual void on_stop();

  const char* name() const override { return service_name().c_str(); }

protected:
  caf::behavior make_behavior() final;
  void on_exit() override;
};

} // namespace mycelium
