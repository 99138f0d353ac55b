#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "mycelium/actors/node.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/topology/deployment_plan.hpp"
#include "mycelium/topology/topology.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/loop/idle_request.hpp"

namespace mycelium::topology {

/// One node of a topology running in this process: a `mycelium::node` with
/// the node's services started from the service registry, and every link
/// the deployment plan gives it. The same services run in any deployment;
/// only the file changes. Use it from a node binary (`node_main`) or
/// directly:
///
///     auto n = topology_node::from_topology(sys, "t.toml", "md", descriptor());
///
/// Thread-safety: `await_*`, `stats` and `local_interest` are thread-safe;
/// `stop` belongs to the owning thread.
class topology_node {
public:
  /// Loads `path`, resolves its routes and starts node `node_name`: the
  /// services first (so their subscriptions exist before any peer connects),
  /// then the links. Fails with `config_invalid` for a bad file or an
  /// unknown node, and with the service's or link's error otherwise; the
  /// message names the node and what failed.
  static caf::expected<std::unique_ptr<topology_node>>
  from_topology(caf::actor_system& sys, const std::string& path,
                const std::string& node_name, const schema_descriptor& schema);

  /// Same from a loaded topology. `with_links` false starts the services
  /// only (what `--describe` uses to learn their subscriptions).
  static caf::expected<std::unique_ptr<topology_node>>
  start(caf::actor_system& sys, const topology& t, const deployment_plan& p,
        const std::string& node_name, const schema_descriptor& schema,
        bool with_links = true);

  ~topology_node();

  mycelium::node& node() noexcept { return *node_; }
  const node_spec& spec() const noexcept { return spec_; }
  const std::vector<transports::link>& links() const noexcept { return links_; }

  /// The first incarnation of each service, by instance name (a restarted
  /// service is a new actor; a normal exit is not restarted).
  const std::map<std::string, caf::actor>& service_actors() const noexcept {
    return services_;
  }

  /// Waits until every link has all the peers the plan gives it; false
  /// (and `why` names the links still waiting) after `timeout`.
  bool await_links(std::chrono::milliseconds timeout, std::string& why) const;

  /// Waits until each peer node in `expected` has asked this node for at
  /// least those type ids (its services' subscriptions), so that a message
  /// published from now on reaches it.
  bool await_peer_interest(const std::map<std::string, std::vector<uint32_t>>& expected,
                           std::chrono::milliseconds timeout, std::string& why) const;

  /// Publishes `deployment_ready` on the node's bus (services that produce
  /// data from nothing start on it). Call once, when every node of the
  /// deployment (`nodes` of them) is ready.
  void announce_ready(uint32_t nodes);

  /// The type ids this node's own services subscribe to (not its links').
  std::vector<uint32_t> local_interest() const;

  /// Per service instance, the type names it subscribes to.
  std::map<std::string, std::vector<std::string>> service_subscriptions() const;

  /// Counters of the node's links, as one JSON array.
  std::string links_json() const;

  /// Stops the services (each runs on_stop), waits up to `drain` for the
  /// links to send what is queued, then stops the links. Idempotent.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds{2});

private:
  topology_node(caf::actor_system& sys, node_spec spec);

  node_spec spec_;
  std::unique_ptr<mycelium::node> node_;
  std::vector<transports::link> links_;
  std::map<std::string, caf::actor> services_;
  /// Keeps the loop from blocking while loop services run (`loop_wait`).
  transports::idle_request loop_idle_;
  std::vector<size_t> expected_peers_; ///< per link
  std::vector<std::vector<std::string>> peer_names_; ///< per link
  const schema_descriptor* schema_ = nullptr;
  bool stopped_ = false;
};

} // namespace mycelium::topology
