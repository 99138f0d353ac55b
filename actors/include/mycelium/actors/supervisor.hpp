#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "mycelium/actors/service_context.hpp"
#include "mycelium/actors/service_registry.hpp"

namespace mycelium {

/// One-for-one restart policy: a failed child is restarted alone; more than
/// `max_restarts` failures within `window` escalate: the supervisor stops all
/// its children and terminates with `errc::escalated`.
struct restart_policy {
  size_t max_restarts = 3;
  std::chrono::milliseconds window{10000};
};

/// What the supervisor needs to (re)create a child.
struct child_spec {
  std::string type;        ///< registry name, for messages
  service_context context; ///< name, bus, params of the instance
  service_factory factory;
  restart_policy policy;
};

using child_spec_ptr = std::shared_ptr<const child_spec>;

/// Asks a supervisor to spawn and watch a child:
/// `(start_child_atom, child_spec_ptr) -> caf::actor`, answered after the
/// child's `on_start` ran.
using start_child_atom = caf::atom_constant<caf::atom("mstartchd")>;

/// Spawns a supervisor actor (one per node). It monitors its children,
/// restarts failed ones per their policy (logged, counted in the bus's
/// service stats) and escalates when a budget is exhausted. Normal exits are
/// not restarted.
caf::actor spawn_supervisor(caf::actor_system& sys, std::string node_name);

} // namespace mycelium

// Child specs hold a factory and never leave the process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mycelium::child_spec_ptr)
