#include "mycelium/topology/deployment_plan.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "mycelium/errc.hpp"

namespace mycelium::topology {

namespace {

using transports::link_config;
using transports::link_kind;
using transports::link_role;

/// The override of the pair (a, b), or nullptr.
const link_override* pair_override(const topology& t, const std::string& a,
                                   const std::string& b) {
  const link_override* out = nullptr;
  for (auto& o : t.links)
    if (o.between.size() == 2
        && ((o.between[0] == a && o.between[1] == b)
            || (o.between[0] == b && o.between[1] == a)))
      out = &o; // the last entry wins, like a later key
  return out;
}

caf::error apply_settings(const topology& t, const link_override* o,
                          link_config& cfg) {
  cfg.relay = false;
  if (auto err = t.link_defaults.apply(cfg))
    return err;
  if (o != nullptr)
    if (auto err = o->settings.apply(cfg))
      return err;
  if (auto err = cfg.validate()) {
    auto where = o != nullptr ? fmt::format("{}:{}:{}", t.file, o->at.line, o->at.column)
                              : t.file;
    return make_error(errc::config_invalid,
                      fmt::format("{}: link {}: {}", where, cfg.name, render(err)));
  }
  return {};
}

std::vector<std::string> start_order(const topology& t) {
  // Kahn's algorithm over `after`, ties in file order (the loader rejected
  // cycles).
  std::vector<std::string> out;
  std::set<std::string> done;
  while (out.size() < t.nodes.size()) {
    bool progress = false;
    for (auto& n : t.nodes) {
      if (done.count(n.name))
        continue;
      bool ready = std::all_of(n.after.begin(), n.after.end(), [&](auto& a) {
        return done.count(a) != 0 || t.find_node(a) == nullptr;
      });
      if (ready) {
        out.push_back(n.name);
        done.insert(n.name);
        progress = true;
        break;
      }
    }
    if (!progress)
      break; // unreachable after validation
  }
  return out;
}

} // namespace

std::vector<link_config> deployment_plan::link_configs(const std::string& node) const {
  std::vector<link_config> out;
  for (auto& l : listeners)
    if (l.node == node && !l.peers.empty())
      out.push_back(l.config);
  for (auto& l : links)
    if (l.connector == node)
      out.push_back(l.config);
  return out;
}

std::string deployment_plan::links_text(const topology& t,
                                        const std::string& node) const {
  auto secret_of = [&](const std::string& a, const std::string& b) {
    std::string out = t.link_defaults.secret_file.value_or("");
    if (auto* o = pair_override(t, a, b); o && o->settings.secret_file)
      out = *o->settings.secret_file;
    return out;
  };
  // A command node has one loop, its links' (an OCaml node's Lwt loop):
  // its `loop_wait`/`loop_spin` apply to every link of its own, the more
  // eager of the node's and the link's wait winning, as in a C++ node.
  const auto* spec = t.find_node(node);
  auto line = [&](link_config c, const std::vector<std::string>& peers,
                  const std::string& secret) {
    if (spec != nullptr && spec->runtime == node_runtime::command && spec->loop_wait) {
      auto both = transports::idle_strategy::merge(t.loop_idle(*spec), c.idle());
      c.wait = both.mode;
      c.spin = std::chrono::duration_cast<std::chrono::microseconds>(both.spin);
    }
    std::string peer_list;
    for (auto& p : peers)
      peer_list += (peer_list.empty() ? "" : ",") + p;
    return fmt::format("name={} role={} kind={} address={} port={} peers={} wait={} "
                       "spin_us={} ring_capacity={} overflow={} send_queue={} "
                       "max_payload={} heartbeat_ms={} peer_timeout_ms={} "
                       "secret_file={}\n",
                       c.name, c.role == link_role::listen ? "listen" : "connect",
                       transports::to_string(c.kind), c.address, c.port, peer_list,
                       transports::to_string(c.wait), c.spin.count(), c.ring_capacity,
                       to_string(c.overflow), c.send_queue, c.max_payload,
                       c.heartbeat_interval.count(), c.peer_timeout.count(),
                       secret.empty() ? "-" : secret);
  };
  std::string out;
  for (auto& l : listeners)
    if (l.node == node && !l.peers.empty())
      out += line(l.config, l.peers, secret_of(node, l.peers.front()));
  for (auto& l : links)
    if (l.connector == node)
      out += line(l.config, {l.listener}, secret_of(l.listener, node));
  return out;
}

std::vector<std::string> deployment_plan::peers_of(const std::string& node) const {
  std::vector<std::string> out;
  for (auto& l : links) {
    if (l.connector == node)
      out.push_back(l.listener);
    else if (l.listener == node)
      out.push_back(l.connector);
  }
  return out;
}

caf::expected<deployment_plan> plan_deployment(const topology& t) {
  deployment_plan p;
  p.start_order = start_order(t);
  // One shared listener per node and kind, created on first use; a pair
  // with its own settings gets a listener of its own next to it.
  std::map<std::pair<std::string, std::string>, size_t> shared; // (node, kind)
  auto listener = [&](const node_spec& n, bool tcp, const link_override* o,
                      const std::string& peer) -> caf::expected<size_t> {
    auto key = std::pair{n.name, std::string{tcp ? "tcp" : "local"}};
    if (o == nullptr)
      if (auto i = shared.find(key); i != shared.end())
        return i->second;
    planned_listener l;
    l.node = n.name;
    auto& cfg = l.config;
    cfg.role = link_role::listen;
    if (tcp || n.local_kind == link_kind::tcp) {
      if (o != nullptr && tcp)
        return make_error(errc::config_invalid,
                          fmt::format("{}:{}:{}: [[links]] between '{}' and '{}': "
                                      "settings for one TCP link between hosts "
                                      "are not supported yet (the TCP port is "
                                      "shared by every peer); put them in "
                                      "[link_defaults]",
                                      t.file, o->at.line, o->at.column, n.name, peer));
      if (n.port == 0)
        return make_error(errc::config_invalid,
                          fmt::format("{}:{}:{}: node '{}' is reached over TCP from "
                                      "node '{}' on another host but has no port: "
                                      "add port = N to node '{}'",
                                      t.file, n.at.line, n.at.column, n.name, peer,
                                      n.name));
      cfg.kind = link_kind::tcp;
      cfg.port = n.port;
      cfg.address = n.local() ? n.address() : std::string{"0.0.0.0"};
      cfg.name = fmt::format("{}:tcp", n.name);
    } else {
      cfg.kind = o != nullptr && o->kind ? *o->kind : n.local_kind; // forced per pair
      cfg.address = n.endpoint_path;
      cfg.name = fmt::format("{}:{}", n.name, transports::to_string(n.local_kind));
      if (o != nullptr) {
        cfg.address += "." + peer;
        cfg.name += "." + peer;
      }
    }
    if (auto err = apply_settings(t, o, cfg))
      return err;
    p.listeners.push_back(std::move(l));
    auto index = p.listeners.size() - 1;
    if (o == nullptr)
      shared.emplace(key, index);
    return index;
  };
  // The later node in the file connects to the earlier one.
  for (size_t j = 0; j < t.nodes.size(); ++j) {
    for (size_t i = 0; i < j; ++i) {
      auto& a = t.nodes[i]; // listens
      auto& b = t.nodes[j]; // connects
      auto* o = pair_override(t, a.name, b.name);
      bool tcp = !t.same_host(a, b) || (o != nullptr && o->kind == link_kind::tcp);
      auto idx = listener(a, tcp, o, b.name);
      if (!idx)
        return idx.error();
      auto& lst = p.listeners[*idx];
      lst.peers.push_back(b.name);
      planned_link l;
      l.listener = a.name;
      l.connector = b.name;
      l.listener_index = *idx;
      // The listener's settings (defaults, or the pair's own), seen from
      // the connecting side.
      auto& cfg = l.config;
      cfg = lst.config;
      cfg.role = link_role::connect;
      if (cfg.kind == link_kind::tcp)
        cfg.address = a.address();
      cfg.name = fmt::format("{}->{}", b.name, a.name);
      p.links.push_back(std::move(l));
    }
  }
  return p;
}

} // namespace mycelium::topology
