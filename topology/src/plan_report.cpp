#include "mycelium/topology/plan_report.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "mycelium/detail/json.hpp"

namespace mycelium::topology {

namespace {

using detail::json_quote;
using transports::link_config;

std::string join(const std::vector<std::string>& xs, const char* sep = ", ") {
  std::string out;
  for (auto& x : xs) {
    if (!out.empty())
      out += sep;
    out += x;
  }
  return out;
}

std::string json_list(const std::vector<std::string>& xs) {
  std::string out = "[";
  for (auto& x : xs) {
    if (out.size() > 1)
      out += ",";
    out += json_quote(x);
  }
  return out + "]";
}

std::string address_of(const link_config& c) {
  return c.kind == transports::link_kind::tcp
           ? fmt::format("{}:{}", c.address, c.port)
           : c.address;
}

std::string wait_of(const link_config& c) {
  return c.wait == transports::wait_mode::spin_then_block
           ? fmt::format("spin_then_block({}us)", c.spin.count())
           : std::string{to_string(c.wait)};
}

std::string capacity_of(const link_config& c) {
  if (c.kind == transports::link_kind::shm)
    return fmt::format("ring {} KiB", c.ring_capacity / 1024);
  return fmt::format("queue {}", c.send_queue);
}

std::string host_of(const node_spec& n) {
  return n.host.empty() ? "localhost" : n.host;
}

std::string process_of(const topology& t, const node_spec& n) {
  if (auto* d = t.daemon_for(n))
    return fmt::format("{} in the daemon at {}:{}",
                       n.binary.empty() ? "the node binary" : n.binary, d->host, d->port);
  switch (n.runtime) {
    case node_runtime::cpp:
      return n.binary.empty() ? "<no binary: set binary = ...>" : n.binary;
    case node_runtime::python:
      return "python3 -m mycelium.node";
    case node_runtime::command:
      return join(n.command, " ");
  }
  return "?";
}

/// Rows padded to the widest cell of each column.
std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i)
        width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size())
        line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
  }
  return out;
}

} // namespace

std::vector<std::string> flowing_types(const service_interest& interest,
                                       const std::string& to) {
  std::set<std::string> out;
  if (auto i = interest.find(to); i != interest.end())
    for (auto& [svc, types] : i->second)
      for (auto& ty : types)
        if (ty.rfind("mycelium.", 0) != 0) // node-local events never cross
          out.insert(ty);
  return {out.begin(), out.end()};
}

std::string plan_table(const topology& t, const deployment_plan& p,
                       const service_interest& interest) {
  std::string out = fmt::format("deployment '{}' ({})\n\n", t.name, t.file);
  std::vector<std::vector<std::string>> nodes{
    {"NODE", "HOST", "RUNTIME", "PROCESS", "RESTART"}};
  for (auto& name : p.start_order) {
    auto& n = *t.find_node(name);
    nodes.push_back({n.name, host_of(n), to_string(n.runtime), process_of(t, n),
                     fmt::format("{} (max {} in {}s)", to_string(n.restart.mode),
                                 n.restart.max_restarts,
                                 n.restart.window.count() / 1000)});
  }
  out += "nodes, in start order:\n" + render_table(nodes) + "\n";
  std::vector<std::vector<std::string>> svcs{
    {"SERVICE", "NODE", "TYPE", "PLACEMENT", "SUBSCRIBES"}};
  for (auto& s : t.services) {
    std::string subs = "?";
    if (auto i = interest.find(s.node); i != interest.end())
      if (auto j = i->second.find(s.name); j != i->second.end())
        subs = j->second.empty() ? "-" : join(j->second);
    svcs.push_back({s.name, s.node, s.type, to_string(s.where), subs});
  }
  out += "services:\n" + render_table(svcs) + "\n";
  if (p.links.empty()) {
    out += "links: none (one node)\n";
    return out;
  }
  std::vector<std::vector<std::string>> links{
    {"LINK", "KIND", "ADDRESS", "WAIT", "CAPACITY", "OVERFLOW", "AUTH", "TYPES"}};
  for (auto& l : p.links) {
    auto& c = l.config;
    auto fwd = flowing_types(interest, l.listener);
    auto back = flowing_types(interest, l.connector);
    auto known = [&](const std::string& node) { return interest.count(node) != 0; };
    std::string types = fmt::format(
      "{} -> {}: {}; {} -> {}: {}", l.connector, l.listener,
      known(l.listener) ? (fwd.empty() ? "-" : join(fwd)) : "?", l.listener,
      l.connector, known(l.connector) ? (back.empty() ? "-" : join(back)) : "?");
    links.push_back({fmt::format("{} -> {}", l.connector, l.listener),
                     to_string(c.kind), address_of(c), wait_of(c), capacity_of(c),
                     to_string(c.overflow), c.secret.empty() ? "none" : "secret",
                     types});
  }
  out += "links (the first node connects to the second):\n" + render_table(links);
  out += "\n'?' = the node did not report its subscriptions (a command node, or "
         "its binary was not run)\n";
  return out;
}

std::string plan_json(const topology& t, const deployment_plan& p,
                      const service_interest& interest) {
  std::string out = "{";
  out += fmt::format("\"name\":{},\"file\":{},\"socket_dir\":{},\"shm_dir\":{},",
                     json_quote(t.name), json_quote(t.file), json_quote(t.socket_dir),
                     json_quote(t.shm_dir));
  out += "\"nodes\":[";
  bool first = true;
  for (auto& name : p.start_order) {
    auto& n = *t.find_node(name);
    std::vector<std::string> svc;
    for (auto* s : t.services_of(n.name))
      svc.push_back(s->name);
    out += fmt::format("{}{{\"name\":{},\"host\":{},\"runtime\":{},\"process\":{},"
                       "\"restart\":{},\"max_restarts\":{},\"services\":{}}}",
                       first ? "" : ",", json_quote(n.name), json_quote(host_of(n)),
                       json_quote(to_string(n.runtime)), json_quote(process_of(t, n)),
                       json_quote(to_string(n.restart.mode)), n.restart.max_restarts,
                       json_list(svc));
    first = false;
  }
  out += "],\"services\":[";
  first = true;
  for (auto& s : t.services) {
    std::string subs = "null";
    if (auto i = interest.find(s.node); i != interest.end())
      if (auto j = i->second.find(s.name); j != i->second.end())
        subs = json_list(j->second);
    out += fmt::format("{}{{\"name\":{},\"node\":{},\"type\":{},\"placement\":{},"
                       "\"subscribes\":{}}}",
                       first ? "" : ",", json_quote(s.name), json_quote(s.node),
                       json_quote(s.type), json_quote(to_string(s.where)), subs);
    first = false;
  }
  out += "],\"links\":[";
  first = true;
  for (auto& l : p.links) {
    auto& c = l.config;
    auto types = [&](const std::string& to) {
      return interest.count(to) ? json_list(flowing_types(interest, to))
                                : std::string{"null"};
    };
    out += fmt::format(
      "{}{{\"name\":{},\"connector\":{},\"listener\":{},\"kind\":{},\"address\":{},"
      "\"wait\":{},\"spin_us\":{},\"ring_capacity\":{},\"send_queue\":{},"
      "\"overflow\":{},\"auth\":{},\"types_to_listener\":{},"
      "\"types_to_connector\":{}}}",
      first ? "" : ",", json_quote(c.name), json_quote(l.connector),
      json_quote(l.listener), json_quote(to_string(c.kind)), json_quote(address_of(c)),
      json_quote(to_string(c.wait)), c.spin.count(), c.ring_capacity, c.send_queue,
      json_quote(to_string(c.overflow)), c.secret.empty() ? "false" : "true",
      types(l.listener), types(l.connector));
    first = false;
  }
  out += "]}";
  return out;
}

} // namespace mycelium::topology
