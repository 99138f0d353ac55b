#pragma once

#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "mycelium/topology/topology.hpp"
#include "mycelium/transports/link_config.hpp"

namespace mycelium::topology {

/// One endpoint a node listens on, and who connects to it.
struct planned_listener {
  std::string node;
  transports::link_config config; ///< role listen, kind, address, port
  std::vector<std::string> peers; ///< nodes that connect here
};

/// One link between two nodes: `connector` connects to `listener`.
struct planned_link {
  std::string listener;
  std::string connector;
  transports::link_config config; ///< the connector's side (role connect)
  size_t listener_index = 0;      ///< into `deployment_plan::listeners`
};

/// Every route of a topology, resolved: which node listens where, which
/// connects to which, over what, with which settings; and the order in which
/// the launcher starts nodes. Services never name a transport: the kind of
/// each link follows from where the two nodes run (same host: the listening
/// node's endpoint kind; different hosts: TCP). Links form a full mesh
/// between nodes and do not relay (`link_config::relay` is false), so a
/// message crosses exactly one link. Plain data.
struct deployment_plan {
  std::vector<planned_listener> listeners;
  std::vector<planned_link> links;
  std::vector<std::string> start_order; ///< `after` first, then file order

  /// The link configurations node `node` starts: its listeners, then its
  /// connections.
  std::vector<transports::link_config> link_configs(const std::string& node) const;

  /// The links of `node` as text for a program that is not a C++ node (the
  /// environment variable MYCELIUM_LINKS of command nodes): one line per
  /// link, `key=value` pairs separated by blanks (docs/topology.md).
  std::string links_text(const topology& t, const std::string& node) const;

  /// The peers node `node` is linked to.
  std::vector<std::string> peers_of(const std::string& node) const;
};

/// Resolves every route of `t`. Fails (config_invalid, naming the file
/// position) when a route cannot be built, e.g. overrides across hosts.
caf::expected<deployment_plan> plan_deployment(const topology& t);

} // namespace mycelium::topology
