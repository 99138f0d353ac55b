#pragma once

#include <map>
#include <set>
#include <string>

#include <caf/expected.hpp>

#include "mycelium/topology/topology.hpp"

namespace mycelium::topology {

/// Reads and validates a topology file (docs/topology.md). Every problem is
/// reported at once, each as "file:line:column: what to fix", in one
/// `errc::config_invalid` error: unknown keys (with "did you mean"),
/// duplicate node or service names, one service on two nodes, a host
/// without a port, shared memory between hosts, unreadable secret files.
/// Thread-safe.
caf::expected<topology> load_topology(const std::string& path);

/// Same for text (`name` stands for the file; relative paths resolve
/// against its directory).
caf::expected<topology> load_topology_string(const std::string& text,
                                             const std::string& name);

/// The service types each node binary registers, by binary path.
using registered_types = std::map<std::string, std::set<std::string>>;

/// Checks that every service of a `cpp` node has a type its node's binary
/// registers (`known`, by binary; a binary missing from `known` is not
/// checked). Errors name the file position of the type and the closest
/// registered type.
caf::error check_service_types(const topology& t, const registered_types& known);

} // namespace mycelium::topology
