#include "mycelium/topology/node_main.hpp"

#include <unistd.h>

#include <iostream>
#include <set>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <fmt/format.h>

#include "mycelium/actors/service_registry.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/topology/topology_loader.hpp"
#include "mycelium/topology/topology_node.hpp"
#include "mycelium/transports/system_config.hpp"

#include "node_daemon.hpp"
#include "node_session.hpp"
#include "node_stand_in.hpp"

namespace mycelium {

namespace {

using namespace topology;

int describe(const node_options& o, const topology::topology& t,
             const topology::deployment_plan& plan, const schema_descriptor& schema) {
  system_config cfg;
  prepare_node_config(cfg, schema);
  caf::actor_system sys{cfg};
  auto started = topology::topology_node::start(sys, t, plan, o.node_name, schema, false);
  if (!started) {
    std::cerr << "mycelium-node: error: " << render(started.error()) << "\n";
    return exit_start;
  }
  auto subs = (*started)->service_subscriptions();
  (*started)->stop();
  // One line per service: "service NAME TYPE,TYPE,..." (mycelium-run plan
  // reads it).
  for (auto* s : t.services_of(o.node_name)) {
    std::string list;
    for (auto& ty : subs[s->name])
      list += (list.empty() ? "" : ",") + ty;
    std::cout << "service " << s->name << " " << list << "\n";
  }
  return exit_ok;
}

} // namespace

int node_main(int argc, char** argv, const schema_descriptor& schema) {
  node_options o;
  CLI::App app{"A Mycelium node: runs the services one node of a topology.toml "
               "places here, linked to the other nodes (usually started by "
               "mycelium-run). Schema: " + schema.package};
  app.add_option("--topology", o.topology_file, "the topology file");
  app.add_option("--node", o.node_name, "which node of the topology this process is");
  app.add_flag("--list-types", o.list_types,
               "print the service types this binary registers, one per line");
  app.add_flag("--describe", o.describe,
               "start the node's services without links and print what each "
               "subscribes to, one line per service: service NAME TYPE,...");
  app.add_option("--control-fd", o.control_fd,
                 "file descriptor of the launcher's control channel (set by "
                 "mycelium-run)");
  app.add_option("--ready-timeout", o.ready_timeout_ms,
                 "milliseconds to wait for every peer before giving up")
    ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  app.add_option("--serve", o.serve,
                 "run as the node daemon of this host on HOST:PORT (or PORT, on "
                 "127.0.0.1): mycelium-run starts the nodes of a topology's "
                 "[[daemons]] entry for this host in this process");
  app.add_option("--secret-file", o.secret_file,
                 "with --serve: accept only launchers that know this shared "
                 "secret (required on an address other than loopback)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? exit_ok : exit_usage;
  }
  if (!o.serve.empty()) {
    if (!o.topology_file.empty() || !o.node_name.empty() || o.describe || o.list_types) {
      std::cerr << "mycelium-node: error: --serve runs a node daemon; it takes no "
                   "--topology, --node, --describe or --list-types (the launcher "
                   "sends the topology)\n";
      return exit_usage;
    }
    return serve_daemon(o, schema);
  }
  if (!o.secret_file.empty()) {
    std::cerr << "mycelium-node: error: --secret-file goes with --serve; a node "
                 "reads its secrets from the topology\n";
    return exit_usage;
  }
  if (o.list_types) {
    for (auto& name : service_registry::global().names())
      std::cout << name << "\n";
    return exit_ok;
  }
  if (o.topology_file.empty() || o.node_name.empty()) {
    std::cerr << "mycelium-node: error: give --topology FILE and --node NAME "
                 "(or --list-types); --help lists the options\n";
    return exit_usage;
  }
  auto t = topology::load_topology(o.topology_file);
  if (!t) {
    std::cerr << "mycelium-node: error: " << render(t.error()) << "\n";
    return exit_usage;
  }
  // This process is the node's binary: check the services of every node
  // that runs it against what it registers (an unknown node is reported
  // when it starts).
  // (A Python node runs this main too; its services are Python classes,
  // checked when they start.)
  if (auto* n = t->find_node(o.node_name); n != nullptr
                                            && n->runtime == topology::node_runtime::cpp) {
    auto names = service_registry::global().names();
    if (auto err = topology::check_service_types(
          *t, {{n->binary, std::set<std::string>(names.begin(), names.end())}})) {
      std::cerr << "mycelium-node: error: " << render(err) << "\n";
      return exit_usage;
    }
  }
  auto plan = topology::plan_deployment(*t);
  if (!plan) {
    std::cerr << "mycelium-node: error: " << render(plan.error()) << "\n";
    return exit_usage;
  }
  if (o.describe)
    return describe(o, *t, *plan, schema);
  if (auto* n = t->find_node(o.node_name); n != nullptr)
    if (auto* d = t->daemon_for(*n))
      return run_via_daemon(o, *t, *d, schema);
  auto stop = signal_stop_source();
  if (stop.fd < 0) {
    std::cerr << "mycelium-node: error: cannot create the signal fd\n";
    return exit_start;
  }
  system_config cfg;
  prepare_node_config(cfg, schema);
  caf::actor_system sys{cfg};
  auto code = run_node_session(o, *t, *plan, schema, sys, o.control_fd, stop);
  ::close(stop.fd);
  return code;
}

} // namespace mycelium
