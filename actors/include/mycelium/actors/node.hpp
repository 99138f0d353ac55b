#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/settings.hpp>

#include "mycelium/actors/request.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "mycelium/actors/supervisor.hpp"
#include "mycelium/bus/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/errc.hpp"

namespace mycelium {

/// One node: a bus plus a supervisor inside one CAF actor system. Starts
/// registered services by name and gives non-actor code (main, tests, the
/// launcher) publish, request and statistics access.
///
/// Thread-safety: `start`, `publish`, `request` and the bus are thread-safe;
/// `stop` and `await_stopped` belong to the thread that owns the node. The
/// actor system must outlive the node; `stop()` (also run by the destructor)
/// stops every service.
class node {
public:
  explicit node(caf::actor_system& sys, std::string name = "local");
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  const std::string& name() const noexcept { return name_; }
  mycelium::bus& bus() noexcept { return *bus_; }
  const std::shared_ptr<mycelium::bus>& bus_ptr() const noexcept { return bus_; }
  const caf::actor& supervisor() const noexcept { return supervisor_; }
  caf::actor_system& system() noexcept { return sys_; }

  /// Spawns service type `type` (a registry name) as instance `instance`
  /// (default: the type name) under the supervisor, on CAF's worker pool or
  /// on the node's I/O loop (`where`; loop placement needs CAF's middleman).
  /// Returns once the service's on_start has run, so its subscriptions are
  /// in place.
  caf::expected<caf::actor> start(const std::string& type,
                                  caf::settings params = {},
                                  std::string instance = {},
                                  restart_policy policy = {},
                                  placement where = placement::pool);

  /// Same with an explicit factory instead of a registry name.
  caf::expected<caf::actor> start(service_factory factory, std::string instance,
                                  caf::settings params = {},
                                  restart_policy policy = {},
                                  placement where = placement::pool);

  /// Budget of a loop-placed handler for services started from now on
  /// (default 10 ms): a handler over it is logged and counted.
  void handler_budget(std::chrono::nanoseconds budget) noexcept {
    handler_budget_ = budget;
  }

  /// The schema of this node's messages, for services started from now on
  /// that work by type id (untyped services: Python and other languages).
  /// `d` must outlive the node.
  void use_schema(const schema_descriptor& d) noexcept { schema_ = &d; }

  /// The schema given to `use_schema`, or nullptr.
  const schema_descriptor* schema() const noexcept { return schema_; }

  /// Publishes from outside any service.
  template <class T>
  publish_status publish(T x) {
    return bus_->publish(std::move(x));
  }

  /// Blocking request/reply from outside any service.
  template <class Reply, class Req>
  caf::expected<Reply> request(Req req, std::chrono::nanoseconds timeout) {
    auto dest = find_responder(*bus_->snapshot(), Req::type_id, Req::type_name,
                               name_);
    if (!dest)
      return dest.error();
    caf::expected<Reply> result{caf::error{}};
    caf::scoped_actor self{sys_};
    self->request(*dest, timeout, std::move(req))
      .receive([&](Reply& x) { result = std::move(x); },
               [&](caf::error& err) {
                 result = request_error(err, Req::type_name, timeout);
               });
    return result;
  }

  /// Blocks until the supervisor terminates (after `stop()` or an
  /// escalation) or `timeout` passes; returns its exit reason, or
  /// `sec::request_timeout` if it is still running.
  caf::error await_stopped(std::chrono::nanoseconds timeout);

  /// Stops every service (each runs on_stop) and waits up to `timeout` for
  /// them; logs an error naming the node if they do not stop in time (a
  /// handler that never returns). Idempotent.
  void stop(std::chrono::nanoseconds timeout = std::chrono::seconds(30));

private:
  caf::expected<caf::actor> start_spec(std::string type, service_factory factory,
                                       std::string instance, caf::settings params,
                                       restart_policy policy, placement where);

  caf::actor_system& sys_;
  std::string name_;
  std::shared_ptr<mycelium::bus> bus_;
  caf::actor supervisor_;
  caf::error exit_reason_;
  bool stopped_ = false;
  std::chrono::nanoseconds handler_budget_ = std::chrono::milliseconds{10};
  const schema_descriptor* schema_ = nullptr;
};

} // namespace mycelium
