#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/settings.hpp>

#include "mycelium/actors/placement.hpp"

namespace mycelium {
class node;
} // namespace mycelium

namespace mycelium::transports {

/// Makes `n` reachable through CAF's remote actor systems (BASP over TCP):
/// publishes a small manager actor on `address`:`port` (port 0: the system
/// picks; loopback by default) that starts registered services by name
/// under the node's supervisor, wired into the node's bus. This is what the
/// topology loader uses to place services on another machine. The manager
/// stops with the node's supervisor. Returns the bound port.
///
/// Needs `caf::io::middleman` loaded. BASP has no authentication: expose
/// only on trusted networks (loopback by default).
caf::expected<uint16_t> expose(node& n, uint16_t port,
                               const std::string& address = "127.0.0.1");

/// Starts service type `type` (a registry name on the remote side) as
/// `instance` (empty: the type name) on the node exposed at `host`:`port`
/// on CAF's worker pool or on that node's I/O loop (`where`), with `params`
/// as its parameters (`service::params()`), and returns
/// its actor handle (a BASP proxy). Returns once the service's on_start has
/// run there, so its subscriptions are in place. Errors name the remote node
/// and the service: unknown type, start failure, no node listening, timeout.
/// Blocking; call it from outside actors.
caf::expected<caf::actor> remote_spawn(caf::actor_system& sys,
                                       const std::string& host, uint16_t port,
                                       const std::string& type,
                                       const std::string& instance,
                                       std::chrono::milliseconds timeout,
                                       placement where = placement::pool,
                                       const caf::settings& params = {});

} // namespace mycelium::transports
