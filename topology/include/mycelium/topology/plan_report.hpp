#pragma once

#include <map>
#include <string>
#include <vector>

#include "mycelium/topology/deployment_plan.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::topology {

/// What each service instance subscribes to, by node and instance name
/// (type names), as the node binaries report it (`--describe`). Nodes that
/// cannot report (Python, external commands) are absent.
using service_interest =
  std::map<std::string, std::map<std::string, std::vector<std::string>>>;

/// The message types that flow from `from` to `to`: what the services of
/// `to` subscribe to; empty when `to` did not report.
std::vector<std::string> flowing_types(const service_interest& interest,
                                       const std::string& to);

/// The resolved deployment for people: every node (process, host, runtime),
/// every service with its type and placement, every link (kind, address,
/// wait strategy, capacity, overflow policy) and the types that flow over
/// it in each direction. Thread-safe.
std::string plan_table(const topology& t, const deployment_plan& p,
                       const service_interest& interest);

/// The same as one JSON object (docs/topology.md shows its fields).
std::string plan_json(const topology& t, const deployment_plan& p,
                      const service_interest& interest);

} // namespace mycelium::topology
