#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

#include "mycelium/wire/frame_header.hpp"

namespace mycelium {

/// Published once on each node's own bus when the whole deployment is ready:
/// every node's services have started, every link is up and every node has
/// the interest of its peers, so a message published from now on reaches
/// every subscriber wherever it runs. (Under mycelium-run the launcher tells
/// each node when the last one is ready; a node started on its own announces
/// it when its own links are ready.) A service that produces data from
/// nothing -- a market-data feed, a replay -- waits for it before its first
/// publish: `subscribe<deployment_ready>(...)`. Node-local: it never crosses
/// a link.
struct deployment_ready {
  static constexpr uint32_t type_id = wire::first_local_type_id + 2;
  static constexpr const char* type_name = "mycelium.deployment_ready";
  std::string node;   ///< this node's name
  uint32_t nodes = 0; ///< nodes in the deployment (1 when started alone)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployment_ready& x) {
  return f(caf::meta::type_name("mycelium.deployment_ready"), x.node, x.nodes);
}

} // namespace mycelium
