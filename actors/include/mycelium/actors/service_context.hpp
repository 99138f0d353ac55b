#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <caf/settings.hpp>

#include "mycelium/actors/placement.hpp"

namespace mycelium {

class bus;
struct schema_descriptor;

/// What a service instance is given at spawn: its name, the bus of its node,
/// its parameters (from code, or later from topology.toml) and where it runs.
/// Copyable.
struct service_context {
  std::string name;
  std::shared_ptr<mycelium::bus> bus;
  caf::settings params;
  /// On CAF's worker pool or on the node's I/O loop.
  mycelium::placement where = placement::pool;
  /// Loop placement: a handler running longer than this is logged and
  /// counted (`service_stats::slow_handlers`); it stalls the loop meanwhile.
  std::chrono::nanoseconds handler_budget = std::chrono::milliseconds{10};
  /// The node's schema, when it has one (`node::use_schema`): what untyped
  /// services (other languages) encode and decode with. Typed C++ services
  /// do not need it.
  const schema_descriptor* schema = nullptr;
};

} // namespace mycelium
