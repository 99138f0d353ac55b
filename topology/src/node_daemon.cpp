#include "node_daemon.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <fmt/format.h>

#include "mycelium/actors/log.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/topology/control_channel.hpp"
#include "mycelium/topology/topology_loader.hpp"
#include "mycelium/transports/remote_auth.hpp"
#include "mycelium/transports/system_config.hpp"

#include "daemon_protocol.hpp"

namespace mycelium::topology {

namespace {

// -- log lines to the launchers ----------------------------------------------------

/// Which relay gets the log lines of which node, by the `who` of a line: the
/// node's name or one of its services' names. The tap runs on any thread.
struct log_routes {
  std::mutex mtx;
  caf::actor daemon; ///< the sender of the lines (relays take only the daemon's)
  std::map<std::string, caf::actor> by_who;
};

log_routes& routes() {
  static log_routes r;
  return r;
}

/// Sends a line whose `who` is "NODE", "NODE/..." or a service of NODE to
/// that node's relay.
void route_log_line(const std::string& who, const std::string& line) {
  auto key = who.substr(0, who.find('/'));
  caf::actor relay;
  caf::actor daemon;
  {
    std::lock_guard<std::mutex> guard{routes().mtx};
    auto i = routes().by_who.find(key);
    if (i == routes().by_who.end())
      return;
    relay = i->second;
    daemon = routes().daemon;
  }
  caf::send_as(daemon, relay, daemon_log_atom::value, line);
}

// -- sessions ----------------------------------------------------------------------

/// A spawn request, as the stand-in sent it.
struct spawn_request {
  std::string text;
  std::string path;
  std::string node;
  int64_t ready_timeout_ms = 0;
  std::string digest;
  caf::actor relay;
};

/// One node running in the daemon: a thread running the node (the same
/// run as in a node process) and a thread reading its control lines, which
/// go to the stand-in's relay. Belongs to the daemon actor.
struct session {
  caf::actor relay;
  control_channel ctl; ///< the daemon's end of the node's control channel
  int stop_fd = -1;    ///< an eventfd: the daemon is stopping
  std::thread runner;
  std::thread reader;
  bool orphaned = false; ///< the stand-in went away
  std::vector<std::string> log_keys; ///< its entries in `routes()`

  ~session() {
    if (runner.joinable())
      runner.join();
    if (reader.joinable())
      reader.join();
    if (stop_fd >= 0)
      ::close(stop_fd);
  }

  void stop() const {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd, &one, sizeof(one));
  }
};

struct daemon_state {
  transports::remote_gate gate{{}, daemon_auth_label, "node daemon"};
  const schema_descriptor* schema = nullptr;
  std::map<std::string, std::unique_ptr<session>> sessions;
  /// Spawns that wait for a session of the same node to end.
  std::map<std::string, std::pair<spawn_request, caf::typed_response_promise<caf::atom_value>>>
    pending;
  bool stopping = false;
  static inline const char* name = "mycelium node daemon";
};

using daemon_actor = caf::stateful_actor<daemon_state>;

bool is_local(daemon_actor* self) {
  auto& s = self->current_sender();
  return s && s->node() == self->node();
}

/// Checks a request and starts its node; an error says why not.
caf::error start_session(daemon_actor* self, spawn_request req) {
  auto& st = self->state;
  auto where = fmt::format("node '{}'", req.node);
  auto t = load_topology_string(req.text, req.path);
  if (!t)
    return t.error();
  auto* n = t->find_node(req.node);
  if (n == nullptr)
    return make_error(errc::config_invalid,
                      fmt::format("{} is not in {}", where, req.path));
  if (n->runtime != node_runtime::cpp)
    return make_error(errc::config_invalid,
                      fmt::format("{} has runtime = \"{}\"; a node daemon runs C++ "
                                  "nodes only", where, to_string(n->runtime)));
  auto ours = wire::to_hex(st.schema->digest);
  if (req.digest != ours)
    return make_error(errc::schema_mismatch,
                      fmt::format("{}: the daemon's binary has schema {} digest {}, "
                                  "the launcher's {}; install the same node binary "
                                  "on both hosts", where, st.schema->package, ours,
                                  req.digest));
  auto names = service_registry::global().names();
  if (auto err = check_service_types(
        *t, {{n->binary, std::set<std::string>(names.begin(), names.end())}}))
    return err;
  auto plan = plan_deployment(*t);
  if (!plan)
    return plan.error();
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return make_error(errc::io_failed, where + ": cannot create a socket pair");
  auto s = std::make_unique<session>();
  s->relay = req.relay;
  s->ctl = control_channel{pair[1]};
  s->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->stop_fd < 0) {
    ::close(pair[0]);
    return make_error(errc::io_failed, where + ": cannot create an eventfd");
  }
  s->log_keys.push_back(req.node);
  for (auto* svc : t->services_of(req.node))
    s->log_keys.push_back(svc->name);
  { // before the node runs, so that no line of it is missed
    std::lock_guard<std::mutex> guard{routes().mtx};
    for (auto& k : s->log_keys)
      routes().by_who[k] = req.relay;
  }
  node_options o;
  o.topology_file = req.path;
  o.node_name = req.node;
  o.ready_timeout_ms = req.ready_timeout_ms;
  auto code = std::make_shared<std::promise<int>>();
  auto& sys = self->system();
  s->runner = std::thread{[&sys, o, t = std::move(*t), plan = std::move(*plan),
                           schema = st.schema, fd = pair[0], stop_fd = s->stop_fd, code] {
    stop_source stop{stop_fd, false, "the node daemon is stopping"};
    code->set_value(run_node_session(o, t, plan, *schema, sys, fd, stop));
  }};
  s->reader = std::thread{[&sys, ctl = &s->ctl, relay = req.relay, node = req.node,
                           daemon = caf::actor_cast<caf::actor>(self),
                           done = code->get_future()]() mutable {
    caf::scoped_actor me{sys};
    for (;;) {
      pollfd p{ctl->fd(), POLLIN, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR)
        break;
      bool closed = false;
      for (auto& line : ctl->receive(closed))
        me->send(relay, daemon_ctl_atom::value, line);
      if (closed)
        break;
    }
    auto exit_code = static_cast<int32_t>(done.get());
    me->send(relay, daemon_exit_atom::value, exit_code);
    me->send(daemon, daemon_done_atom::value, node);
  }};
  self->monitor(req.relay);
  log(log_level::info, "daemon",
      fmt::format("started node '{}' of {} for {}", req.node, req.path,
                  caf::to_string(req.relay.node())));
  st.sessions.emplace(req.node, std::move(s));
  return caf::none;
}

caf::behavior daemon(daemon_actor* self, std::string secret, const schema_descriptor* schema) {
  self->state.gate = transports::remote_gate{std::move(secret), daemon_auth_label,
                                             "node daemon"};
  self->state.schema = schema;
  self->set_down_handler([self](caf::down_msg& dm) {
    for (auto& [node, s] : self->state.sessions)
      if (s->relay.address() == dm.source && !s->orphaned) {
        s->orphaned = true;
        log(log_level::warning, "daemon",
            fmt::format("the launcher of node '{}' went away: stopping the node", node));
        ::shutdown(s->ctl.fd(), SHUT_WR); // the node sees its launcher's end
      }
  });
  auto quit_if_idle = [self] {
    if (self->state.stopping && self->state.sessions.empty())
      self->quit();
  };
  return transports::remote_auth_handler(self, self->state.gate).or_else(caf::message_handler{
    [self](daemon_spawn_atom, std::string& text, std::string& path, std::string& node,
           int64_t ready_timeout_ms, std::string& digest,
           caf::actor& relay) -> caf::result<caf::atom_value> {
      auto& st = self->state;
      if (!st.gate.allows(self->current_sender()))
        return st.gate.refusal();
      if (st.stopping)
        return make_error(errc::service_failed, "the node daemon is stopping");
      if (!relay)
        return make_error(errc::config_invalid, "a spawn without a relay");
      spawn_request req{std::move(text), std::move(path), node, ready_timeout_ms,
                        std::move(digest), std::move(relay)};
      if (auto i = st.sessions.find(node); i != st.sessions.end()) {
        if (!i->second->orphaned || st.pending.count(node) != 0)
          return make_error(errc::config_invalid,
                            fmt::format("node '{}' already runs in this node daemon "
                                        "(started by another launcher)", node));
        // The previous run of the node is still stopping: start this one
        // when it has ended.
        auto rp = self->make_response_promise<caf::atom_value>();
        st.pending.emplace(node, std::pair{std::move(req), rp});
        return rp;
      }
      if (auto err = start_session(self, std::move(req)))
        return err;
      return caf::atom("ok");
    },
    [self](daemon_ctl_atom, const std::string& node, const std::string& line) {
      auto& st = self->state;
      auto i = st.sessions.find(node);
      auto& sender = self->current_sender();
      if (!sender || !st.gate.allows(sender) || i == st.sessions.end()
          || i->second->orphaned || sender->node() != i->second->relay.node())
        return;
      i->second->ctl.send(line);
    },
    [self, quit_if_idle](daemon_done_atom, const std::string& node) {
      auto& st = self->state;
      if (!is_local(self))
        return;
      auto i = st.sessions.find(node);
      if (i == st.sessions.end())
        return;
      {
        std::lock_guard<std::mutex> guard{routes().mtx};
        for (auto& k : i->second->log_keys)
          routes().by_who.erase(k);
      }
      st.sessions.erase(i); // joins its threads, which have ended
      log(log_level::info, "daemon", fmt::format("node '{}' ended", node));
      if (auto p = st.pending.find(node); p != st.pending.end()) {
        auto [req, rp] = std::move(p->second);
        st.pending.erase(p);
        if (auto err = start_session(self, std::move(req)))
          rp.deliver(err);
        else
          rp.deliver(caf::atom("ok"));
      }
      quit_if_idle();
    },
    [self, quit_if_idle](daemon_stop_atom) {
      auto& st = self->state;
      if (!is_local(self))
        return;
      st.stopping = true;
      for (auto& [node, p] : st.pending)
        p.second.deliver(make_error(errc::service_failed, "the node daemon is stopping"));
      st.pending.clear();
      for (auto& [node, s] : st.sessions)
        s->stop();
      quit_if_idle();
    },
  });
}

} // namespace

int serve_daemon(const node_options& o, const schema_descriptor& schema) {
  auto where = transports::parse_host_port(o.serve, "--serve", "127.0.0.1", true);
  if (!where) {
    std::cerr << "mycelium-node: error: " << render(where.error()) << "\n";
    return exit_usage;
  }
  auto [host, port] = *where;
  std::string secret;
  if (!o.secret_file.empty()) {
    auto s = config::read_secret_file(o.secret_file);
    if (!s) {
      std::cerr << "mycelium-node: error: --secret-file: " << render(s.error()) << "\n";
      return exit_usage;
    }
    secret = std::move(*s);
  }
  if (!transports::is_loopback(host) && secret.empty()) {
    std::cerr << "mycelium-node: error: refusing to listen on " << host
              << " without authentication: anyone who reaches the port could "
                 "run services here. Pass --secret-file FILE (the same secret as "
                 "the topology's [[daemons]] secret_file), or listen on 127.0.0.1\n";
    return exit_usage;
  }
  auto stop = signal_stop_source();
  int done_pipe[2];
  if (stop.fd < 0 || ::pipe2(done_pipe, O_CLOEXEC) != 0) {
    std::cerr << "mycelium-node: error: cannot create the signal fd or pipe\n";
    return exit_start;
  }
  fd_set_closer closer{done_pipe[0], done_pipe[1], stop.fd}; // after `sys`
  system_config cfg;
  prepare_node_config(cfg, schema);
  caf::actor_system sys{cfg};
  set_log_tap(route_log_line);
  auto d = sys.spawn(daemon, secret, &schema);
  {
    std::lock_guard<std::mutex> guard{routes().mtx};
    routes().daemon = d;
  }
  d->attach_functor([fd = done_pipe[1]] {
    char x = 'x';
    [[maybe_unused]] auto n = ::write(fd, &x, 1);
  });
  auto bound = sys.middleman().publish(d, port, host.c_str(), true);
  if (!bound) {
    caf::anon_send_exit(d, caf::exit_reason::user_shutdown);
    std::cerr << "mycelium-node: error: cannot listen on " << host << ":" << port
              << ": " << render(bound.error()) << "\n";
    set_log_tap(nullptr);
    return exit_start;
  }
  std::printf("mycelium-node daemon listening on %s:%u\n", host.c_str(),
              static_cast<unsigned>(*bound));
  std::fflush(stdout);
  log(log_level::info, "daemon",
      fmt::format("serving schema {} on {}:{}{}", schema.package, host, *bound,
                  secret.empty() ? "" : " (peers must know the secret)"));
  caf::scoped_actor self{sys};
  bool stopping = false;
  for (;;) {
    pollfd fds[2] = {{stop.fd, POLLIN, 0}, {done_pipe[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno == EINTR)
      continue;
    if (fds[1].revents != 0)
      break;
    if (fds[0].revents & POLLIN) {
      auto what = stop.take();
      if (stopping) {
        std::cerr << "mycelium-node: " << what << " again: exiting at once\n";
        std::_Exit(exit_orphaned);
      }
      stopping = true;
      log(log_level::info, "daemon", what + ": stopping every node");
      self->send(d, daemon_stop_atom::value);
    }
  }
  set_log_tap(nullptr);
  {
    std::lock_guard<std::mutex> guard{routes().mtx};
    routes().daemon = nullptr;
  }
  log(log_level::info, "daemon", "stopped");
  return exit_ok;
}

} // namespace mycelium::topology
