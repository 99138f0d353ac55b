#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

#include "mycelium/wire/frame_header.hpp"

namespace mycelium {

/// Published once on a node's own bus when the node is ready: its services
/// have started, its links are up and every peer has asked for what its
/// services subscribe to, so a message published from now on reaches every
/// subscriber in the deployment. A service that produces data from nothing
/// (a market-data feed, a replay) waits for it before its first publish:
/// `subscribe<node_ready>(...)`. Node-local: it never crosses a link.
struct node_ready {
  static constexpr uint32_t type_id = wire::first_local_type_id + 2;
  static constexpr const char* type_name = "mycelium.node_ready";
  std::string node; ///< the node's name
  uint32_t peers = 0; ///< nodes it is linked to
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_ready& x) {
  return f(caf::meta::type_name("mycelium.node_ready"), x.node, x.peers);
}

} // namespace mycelium
