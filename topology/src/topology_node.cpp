#include "mycelium/topology/topology_node.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "mycelium/detail/json.hpp"
#include "mycelium/actors/deployment_ready.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/topology/topology_loader.hpp"

namespace mycelium::topology {

namespace {

using namespace std::chrono_literals;

using clock = std::chrono::steady_clock;

/// What is left of `timeout` since `start` (never negative).
std::chrono::milliseconds left(clock::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return std::max(d, std::chrono::milliseconds{0});
}

/// Whether the peers of `st` that are in `expected` asked for their ids.
bool has_interest(const transports::link_stats& st,
                  const std::map<std::string, std::vector<uint32_t>>& expected,
                  const std::vector<std::string>& peers_of_link,
                  const schema_descriptor& schema,
                  std::vector<std::string>* report) {
  bool ok = true;
  for (auto& peer : peers_of_link) {
    auto e = expected.find(peer);
    if (e == expected.end())
      continue;
    std::set<uint32_t> have;
    for (auto& p : st.peer_list)
      if (p.node == peer)
        have.insert(p.interest.begin(), p.interest.end());
    std::vector<uint32_t> lack;
    for (auto id : e->second)
      if (have.count(id) == 0 && schema.find(id) != nullptr)
        lack.push_back(id);
    if (!lack.empty()) {
      ok = false;
      if (report != nullptr)
        report->push_back(fmt::format("{} (type ids {})", peer, fmt::join(lack, ", ")));
    }
  }
  return ok;
}

} // namespace

topology_node::topology_node(caf::actor_system& sys, node_spec spec)
  : spec_(std::move(spec)), node_(std::make_unique<mycelium::node>(sys, spec_.name)) {
}

topology_node::~topology_node() {
  stop();
}

caf::expected<std::unique_ptr<topology_node>>
topology_node::from_topology(caf::actor_system& sys, const std::string& path,
                             const std::string& node_name,
                             const schema_descriptor& schema) {
  auto t = load_topology(path);
  if (!t)
    return std::move(t.error());
  auto p = plan_deployment(*t);
  if (!p)
    return std::move(p.error());
  return start(sys, *t, *p, node_name, schema);
}

caf::expected<std::unique_ptr<topology_node>>
topology_node::start(caf::actor_system& sys, const topology& t,
                     const deployment_plan& p, const std::string& node_name,
                     const schema_descriptor& schema, bool with_links) {
  auto* spec = t.find_node(node_name);
  if (spec == nullptr) {
    std::vector<std::string> names;
    for (auto& n : t.nodes)
      names.push_back(n.name);
    std::string list;
    for (auto& n : names)
      list += (list.empty() ? "" : ", ") + n;
    return make_error(errc::config_invalid,
                      fmt::format("{}: no node is named '{}' (nodes: {})", t.file,
                                  node_name, list));
  }
  std::unique_ptr<topology_node> self{new topology_node(sys, *spec)};
  self->schema_ = &schema;
  self->node_->use_schema(schema); // for services of other languages
  bool loop_services = false;
  for (auto* s : t.services_of(node_name))
    loop_services = loop_services || s->where == placement::loop;
  if (loop_services || spec->loop_wait) {
    // Loop services hear other threads (pool services, Python, timers)
    // through the loop's inbox: a blocked loop pays a thread wake-up per
    // message. The loop idles as the node says, else as links do.
    auto req = transports::idle_request::make(sys, t.loop_idle(*spec));
    if (!req)
      return make_error(errc::config_invalid,
                        fmt::format("node '{}': {}", node_name, render(req.error())));
    self->loop_idle_ = std::move(*req);
  }
  for (auto* s : t.services_of(node_name)) {
    auto started = self->node_->start(s->type, s->params, s->name, s->restart, s->where);
    if (!started)
      return make_error(errc::config_invalid,
                        fmt::format("node '{}': service '{}' (type '{}') did not "
                                    "start: {}", node_name, s->name, s->type,
                                    render(started.error())));
    self->services_.emplace(s->name, std::move(*started));
  }
  if (!with_links)
    return self;
  std::error_code ec;
  std::filesystem::create_directories(t.socket_dir, ec);
  if (ec)
    return make_error(errc::config_invalid,
                      fmt::format("node '{}': cannot create the socket directory "
                                  "'{}': {}", node_name, t.socket_dir, ec.message()));
  std::filesystem::permissions(t.socket_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  for (auto& l : p.listeners) {
    if (l.node != node_name || l.peers.empty())
      continue;
    auto cfg = l.config;
    auto link = transports::link::start(*self->node_, schema, cfg);
    if (!link)
      return make_error(errc::config_invalid,
                        fmt::format("node '{}': cannot listen on {} for {}: {}",
                                    node_name, cfg.endpoint(),
                                    fmt::join(l.peers, ", "), render(link.error())));
    self->links_.push_back(std::move(*link));
    self->expected_peers_.push_back(l.peers.size());
    self->peer_names_.push_back(l.peers);
  }
  for (auto& l : p.links) {
    if (l.connector != node_name)
      continue;
    auto link = transports::link::start(*self->node_, schema, l.config);
    if (!link)
      return make_error(errc::config_invalid,
                        fmt::format("node '{}': cannot start the link to '{}' ({}): {}",
                                    node_name, l.listener, l.config.endpoint(),
                                    render(link.error())));
    self->links_.push_back(std::move(*link));
    self->expected_peers_.push_back(1);
    self->peer_names_.push_back({l.listener});
  }
  return self;
}

bool topology_node::await_links(std::chrono::milliseconds timeout,
                                std::string& why) const {
  auto deadline = clock::now() + timeout;
  bool ok = true;
  why.clear();
  for (size_t i = 0; i < links_.size(); ++i) {
    auto want = expected_peers_[i];
    if (links_[i].await([want](const transports::link_stats& st) { return st.peers >= want; },
                        left(deadline)))
      continue;
    ok = false;
    auto st = links_[i].stats();
    std::set<std::string> have;
    for (auto& p : st.peer_list)
      have.insert(p.node);
    std::vector<std::string> missing;
    for (auto& n : peer_names_[i])
      if (have.count(n) == 0)
        missing.push_back(n);
    why += fmt::format("{}link {} ({}) waits for {}{}", why.empty() ? "" : "; ",
                       st.name, links_[i].config().endpoint(),
                       fmt::join(missing, ", "),
                       st.last_error.empty() ? "" : " (last error: " + st.last_error + ")");
  }
  return ok;
}

bool topology_node::await_peer_interest(
  const std::map<std::string, std::vector<uint32_t>>& expected,
  std::chrono::milliseconds timeout, std::string& why) const {
  auto deadline = clock::now() + timeout;
  std::vector<std::string> report;
  for (size_t i = 0; i < links_.size(); ++i) {
    auto& peers = peer_names_[i];
    auto pred = [&](const transports::link_stats& st) {
      return has_interest(st, expected, peers, *schema_, nullptr);
    };
    if (!links_[i].await(pred, left(deadline)))
      has_interest(links_[i].stats(), expected, peers, *schema_, &report);
  }
  if (report.empty())
    return true;
  why = fmt::format("no interest yet from {}", fmt::join(report, "; "));
  return false;
}

void topology_node::announce_ready(uint32_t nodes) {
  node_->publish(deployment_ready{spec_.name, nodes});
}

std::vector<uint32_t> topology_node::local_interest() const {
  return node_->bus().interest(nullptr, true);
}

std::map<std::string, std::vector<std::string>>
topology_node::service_subscriptions() const {
  return node_->bus().subscriptions();
}

std::string topology_node::links_json() const {
  using detail::json_quote;
  std::string out = "[";
  for (size_t i = 0; i < links_.size(); ++i) {
    auto st = links_[i].stats();
    std::vector<std::string> peers;
    for (auto& p : st.peer_list)
      peers.push_back(json_quote(p.node));
    out += fmt::format(
      "{}{{\"name\":{},\"endpoint\":{},\"state\":{},\"peers\":[{}],\"expected_peers\":{},"
      "\"frames_sent\":{},\"frames_received\":{},\"queued\":{},\"dropped_overflow\":{},"
      "\"back_pressured\":{},\"dropped_link_down\":{},\"frames_too_large\":{},"
      "\"bad_frames\":{},\"connects\":{},\"disconnects\":{},\"last_error\":{}}}",
      i == 0 ? "" : ",", json_quote(st.name), json_quote(links_[i].config().endpoint()),
      json_quote(transports::to_string(st.state)), fmt::join(peers, ","),
      expected_peers_[i], st.frames_sent, st.frames_received, st.queued,
      st.dropped_overflow, st.back_pressured, st.dropped_link_down,
      st.frames_too_large, st.bad_frames, st.connects, st.disconnects,
      json_quote(st.last_error));
  }
  return out + "]";
}

void topology_node::stop(std::chrono::milliseconds drain) {
  if (stopped_)
    return;
  stopped_ = true;
  node_->stop();
  // What the services published last may still be queued towards peers.
  auto deadline = clock::now() + drain;
  for (auto& l : links_)
    (void) l.await([](const transports::link_stats& st) { return st.queued == 0; },
                   left(deadline));
  for (auto& l : links_)
    l.stop();
  loop_idle_.reset();
}

} // namespace mycelium::topology
