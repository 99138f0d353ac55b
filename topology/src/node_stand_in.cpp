#include "node_stand_in.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <fmt/format.h>

#include "mycelium/actors/log.hpp"
#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/topology/control_channel.hpp"
#include "mycelium/transports/remote_auth.hpp"

#include "daemon_protocol.hpp"

namespace mycelium::topology {

namespace {

using namespace std::chrono_literals;

/// Code written into the exit pipe when the daemon is gone.
constexpr int32_t daemon_lost = -1;

/// Receives what the daemon sends about the node: control lines go to the
/// launcher, log lines to stderr (which the launcher merges), and the exit
/// code (or the daemon's end) into `exit_fd` for the main thread. Takes
/// messages from the daemon's process only. Runs on CAF's workers.
caf::behavior relay(caf::event_based_actor* self, control_channel* ctl, int exit_fd,
                    caf::actor daemon) {
  self->monitor(daemon);
  auto report = [exit_fd](int32_t code) {
    [[maybe_unused]] auto n = ::write(exit_fd, &code, sizeof(code));
  };
  self->set_down_handler([self, report](caf::down_msg&) {
    report(daemon_lost);
    self->quit();
  });
  auto from_daemon = [self, node = daemon.node()] {
    auto& s = self->current_sender();
    return s && s->node() == node;
  };
  return {
    [=](daemon_ctl_atom, const std::string& line) {
      if (from_daemon())
        ctl->send(line);
    },
    [=](daemon_log_atom, const std::string& line) {
      if (from_daemon())
        std::fwrite(line.data(), 1, line.size(), stderr);
    },
    [=](daemon_exit_atom, int32_t code) {
      if (!from_daemon())
        return;
      report(code);
      self->quit();
    },
  };
}

} // namespace

int run_via_daemon(const node_options& o, const topology& t, const daemon_spec& d,
                   const schema_descriptor& schema) {
  control_channel ctl{o.control_fd};
  auto at = fmt::format("{}:{}", d.host, d.port);
  auto name = fmt::format("node '{}'", o.node_name);
  auto stop = signal_stop_source();
  int exit_pipe[2];
  if (stop.fd < 0 || ::pipe2(exit_pipe, O_CLOEXEC) != 0)
    return fail(ctl, exit_start, "cannot create the signal fd or pipe");
  fd_set_closer closer{exit_pipe[0], exit_pipe[1], stop.fd}; // after `sys` below
  std::string secret;
  if (!d.secret_file.empty()) {
    auto s = config::read_secret_file(d.secret_file);
    if (!s)
      return fail(ctl, exit_usage, fmt::format("{}: the secret_file of the daemon of "
                                               "host {}: {}", name, d.host,
                                               render(s.error())));
    secret = std::move(*s);
  }
  std::string text;
  {
    std::ifstream in{t.file, std::ios::binary};
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in)
      return fail(ctl, exit_usage, fmt::format("{}: cannot read {}", name, t.file));
    text = ss.str();
  }
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{cfg};
  auto daemon = sys.middleman().remote_actor(d.host, d.port);
  if (!daemon)
    return fail(ctl, exit_daemon,
                fmt::format("{}: cannot reach the node daemon of host {} at {} ({}); "
                            "start it there with `{} --serve {}{}`",
                            name, d.host, at, render(daemon.error()),
                            t.find_node(o.node_name)->binary, at,
                            secret.empty() ? "" : " --secret-file FILE"));
  caf::scoped_actor self{sys};
  if (!secret.empty())
    if (auto err = transports::remote_authenticate(self, *daemon, secret,
                                                   daemon_auth_label, 10s))
      return fail(ctl, exit_daemon,
                  fmt::format("{}: the node daemon at {} refused this launcher: {}",
                              name, at, render(err)));
  auto r = sys.spawn(relay, &ctl, exit_pipe[1], *daemon);
  log(log_level::info, o.node_name, "starts in the node daemon at " + at);
  caf::error err;
  self
    ->request(*daemon, std::chrono::milliseconds{o.ready_timeout_ms} + 10s,
              daemon_spawn_atom::value, text, t.file, o.node_name, o.ready_timeout_ms,
              wire::to_hex(schema.digest), r)
    .receive([](caf::atom_value) {}, [&](caf::error& e) { err = std::move(e); });
  auto end = [&](int code) {
    caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
    return code;
  };
  if (err) {
    bool bad_file = err.category() == caf::atom("mycelium")
                    && (err.code() == static_cast<uint8_t>(errc::config_invalid)
                        || err.code() == static_cast<uint8_t>(errc::schema_mismatch));
    return end(fail(ctl, bad_file ? exit_usage : exit_daemon,
                    fmt::format("{}: the node daemon at {} did not start it: {}", name,
                                at, render(err))));
  }
  bool stopping = false;
  for (;;) {
    pollfd fds[3] = {{exit_pipe[0], POLLIN, 0}, {stop.fd, POLLIN, 0}, {ctl.fd(), POLLIN, 0}};
    if (::poll(fds, ctl.open() ? 3 : 2, -1) < 0 && errno == EINTR)
      continue;
    if (fds[0].revents & POLLIN) {
      int32_t code = daemon_lost;
      [[maybe_unused]] auto n = ::read(exit_pipe[0], &code, sizeof(code));
      if (code == daemon_lost)
        return end(fail(ctl, exit_daemon,
                        fmt::format("{}: lost the node daemon at {}; the node's "
                                    "services there are gone", name, at)));
      return end(code);
    }
    if (fds[1].revents & POLLIN) {
      auto what = stop.take();
      if (stopping) {
        log(log_level::info, o.node_name, what + " again: leaving the node to its daemon");
        return end(exit_orphaned);
      }
      stopping = true;
      log(log_level::info, o.node_name, what + ": stopping the node in its daemon");
      self->send(*daemon, daemon_ctl_atom::value, o.node_name, std::string{"stop"});
    }
    if (ctl.open() && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      bool closed = false;
      for (auto& line : ctl.receive(closed))
        self->send(*daemon, daemon_ctl_atom::value, o.node_name, line);
      if (closed) {
        // Our end makes the daemon stop the node (it monitors the relay).
        log(log_level::error, o.node_name,
            "the launcher went away (control channel closed): stopping");
        return end(exit_orphaned);
      }
    }
  }
}

} // namespace mycelium::topology
