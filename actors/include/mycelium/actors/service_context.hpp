#pragma once

#include <memory>
#include <string>

#include <caf/settings.hpp>

namespace mycelium {

class bus;

/// What a service instance is given at spawn: its name, the bus of its node
/// and its parameters (from code, or later from topology.toml). Copyable.
struct service_context {
  std::string name;
  std::shared_ptr<mycelium::bus> bus;
  caf::settings params;
};

} // namespace mycelium
