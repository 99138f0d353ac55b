#include "node_session.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <sstream>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "mycelium/actors/log.hpp"
#include "mycelium/detail/json.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/topology/control_channel.hpp"
#include "mycelium/topology/topology_node.hpp"

namespace mycelium::topology {

std::string stop_source::take() const {
  if (fd < 0)
    return {};
  if (signals) {
    signalfd_siginfo si{};
    if (::read(fd, &si, sizeof(si)) == sizeof(si))
      return fmt::format("signal {}", si.ssi_signo);
    return {};
  }
  uint64_t n = 0;
  if (::read(fd, &n, sizeof(n)) == sizeof(n))
    return why;
  return {};
}

fd_set_closer::~fd_set_closer() {
  for (int fd : fds_)
    if (fd >= 0)
      ::close(fd);
}

stop_source signal_stop_source() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  stop_source out;
  out.fd = ::signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  out.signals = true;
  return out;
}

void prepare_node_config(caf::actor_system_config& cfg, const schema_descriptor& schema) {
  cfg.set("logger.console", caf::atom("none"));
  if (schema.add_message_types != nullptr)
    schema.add_message_types(cfg);
}

int fail(control_channel& ctl, int code, const std::string& text) {
  std::cerr << "mycelium-node: error: " << text << "\n";
  ctl.send("error " + std::to_string(code) + " " + text);
  return code;
}

namespace {

using namespace std::chrono_literals;
using detail::json_quote;

/// Writes "down NAME REASON" into a pipe when a watched actor ends, so the
/// main thread's poll wakes up. Runs on CAF's workers.
caf::behavior down_watcher(caf::event_based_actor* self, int fd,
                           std::map<caf::actor_addr, std::string> names) {
  auto left = std::make_shared<std::map<caf::actor_addr, std::string>>(std::move(names));
  for (auto& kv : *left)
    self->monitor(caf::actor_cast<caf::actor>(kv.first));
  self->set_down_handler([self, fd, left](caf::down_msg& dm) {
    auto i = left->find(dm.source);
    if (i == left->end())
      return;
    auto line = fmt::format("{} {}\n", i->second, dm.reason ? "error" : "normal");
    [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
    left->erase(i);
    if (left->empty())
      self->quit();
  });
  return {[](caf::unit_t) {}};
}

std::string ids_text(const std::vector<uint32_t>& ids) {
  std::string out;
  for (auto id : ids)
    out += (out.empty() ? "" : ",") + std::to_string(id);
  return out;
}

std::vector<uint32_t> parse_ids(const std::string& text) {
  std::vector<uint32_t> out;
  std::stringstream ss{text};
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty())
      out.push_back(static_cast<uint32_t>(std::stoul(item)));
  return out;
}


} // namespace

int run_node_session(const node_options& o, const topology& t, const deployment_plan& plan,
                     const schema_descriptor& schema, caf::actor_system& sys,
                     int control_fd, const stop_source& stop) {
  control_channel ctl{control_fd};
  const int sfd = stop.fd;
  int down_pipe[2];
  if (::pipe2(down_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    return fail(ctl, exit_start, "cannot create a pipe");
  auto started = topology_node::start(sys, t, plan, o.node_name, schema);
  if (!started)
    return fail(ctl, exit_start, render(started.error()));
  auto& tn = **started;
  ctl.send("started");
  log(log_level::info, o.node_name,
      fmt::format("started {} service(s), {} link(s)",
                  t.services_of(o.node_name).size(), tn.links().size()));
  // Watch the supervisor (escalation) and each service (a normal exit is a
  // service that finished; failures are the supervisor's business).
  std::map<caf::actor_addr, std::string> watched;
  watched.emplace(tn.node().supervisor().address(), "supervisor");
  for (auto& [name, actor] : tn.service_actors())
    watched.emplace(actor.address(), "service " + name);
  auto watcher = sys.spawn(down_watcher, down_pipe[1], watched);

  auto timeout = std::chrono::milliseconds{o.ready_timeout_ms};
  std::string why;
  // Waiting for peers takes turns of 100 ms, so that a signal, "stop" or the
  // launcher's end interrupt it at once. Lines other than "stop" that come
  // meanwhile ("expect", "go") are kept for the loop below.
  std::vector<std::string> early;
  bool stop_early = false;
  bool orphaned = false;
  auto interrupted = [&] {
    if (auto what = stop.take(); !what.empty()) {
      log(log_level::info, o.node_name, what + " while starting: stopping");
      stop_early = true;
    }
    if (ctl.open()) {
      bool closed = false;
      for (auto& line : ctl.receive(closed)) {
        if (line == "stop")
          stop_early = true;
        else
          early.push_back(line);
      }
      if (closed) {
        log(log_level::error, o.node_name,
            "the launcher went away (control channel closed) while starting: stopping");
        stop_early = orphaned = true;
      }
    }
    return stop_early;
  };
  auto await_in_turns = [&](auto&& step) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (step(std::clamp(left, std::chrono::milliseconds{0},
                          std::chrono::milliseconds{100})))
        return true;
      if (interrupted() || left.count() <= 0)
        return false;
    }
  };
  auto stopped_while_starting = [&] {
    anon_send_exit(watcher, caf::exit_reason::user_shutdown);
    tn.stop();
    ctl.send("stopped");
    return orphaned ? exit_orphaned : exit_ok;
  };
  if (!await_in_turns([&](std::chrono::milliseconds d) { return tn.await_links(d, why); })) {
    if (stop_early)
      return stopped_while_starting();
    return fail(ctl, exit_peers,
                fmt::format("node '{}': peers not reached within {} ms: {}",
                            o.node_name, o.ready_timeout_ms, why));
  }
  bool ready = false;
  std::map<std::string, std::vector<uint32_t>> expected;
  auto check_ready = [&] {
    if (ready)
      return true;
    if (!await_in_turns([&](std::chrono::milliseconds d) {
          return tn.await_peer_interest(expected, d, why);
        })) {
      if (stop_early)
        return false;
      fail(ctl, exit_peers,
           fmt::format("node '{}': {} within {} ms", o.node_name, why,
                       o.ready_timeout_ms));
      return false;
    }
    ready = true;
    if (!ctl.open()) // alone: nobody else to wait for
      tn.announce_ready(1);
    ctl.send("ready");
    log(log_level::info, o.node_name, "ready");
    return true;
  };
  if (ctl.open()) {
    ctl.send("links-up " + ids_text(tn.local_interest()));
  } else if (!check_ready()) {
    return stop_early ? stopped_while_starting() : exit_peers;
  }

  int code = exit_ok;
  bool running = !stop_early;
  auto handle_line = [&](const std::string& line) {
    auto [verb, arg] = split_verb(line);
    if (verb == "expect") {
      auto [peer, ids] = split_verb(arg);
      expected[peer] = parse_ids(ids);
    } else if (verb == "go") {
      if (!check_ready()) {
        code = orphaned ? exit_orphaned : stop_early ? exit_ok : exit_peers;
        running = false;
      }
    } else if (verb == "all-ready") {
      // Every node of the deployment is ready (the launcher knows).
      tn.announce_ready(static_cast<uint32_t>(std::stoul(arg.empty() ? "1" : arg)));
    } else if (verb == "status") {
      // One tab-separated row per link for the launcher's table, then the
      // whole status as JSON.
      for (auto& l : tn.links()) {
        auto st = l.stats();
        ctl.send(fmt::format("link {}\t{}\t{}\t{}\t{}\t{}\t{}", st.name,
                             transports::to_string(st.state), st.peers,
                             st.frames_received, st.frames_sent,
                             st.dropped_overflow + st.back_pressured
                               + st.dropped_link_down + st.frames_too_large,
                             st.queued));
      }
      ctl.send(fmt::format("status {{\"node\":{},\"pid\":{},\"ready\":{},\"links\":{}}}",
                           json_quote(o.node_name), ::getpid(),
                           ready ? "true" : "false", tn.links_json()));
    } else if (verb == "stop") {
      running = false;
    } else {
      log(log_level::warning, o.node_name,
          "unknown control line from the launcher: " + line);
    }
  };
  for (auto& line : early)
    if (running)
      handle_line(line);
  while (running) {
    pollfd fds[3] = {{sfd, POLLIN, 0}, {down_pipe[0], POLLIN, 0}, {ctl.fd(), POLLIN, 0}};
    int n = ::poll(fds, ctl.open() ? 3 : 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (fds[0].revents & POLLIN) {
      if (auto what = stop.take(); !what.empty()) {
        log(log_level::info, o.node_name, what + ": stopping");
        running = false;
      }
    }
    if (fds[1].revents & POLLIN) {
      char buf[512];
      auto r = ::read(down_pipe[0], buf, sizeof(buf));
      std::string lines(buf, r > 0 ? static_cast<size_t>(r) : 0);
      std::stringstream ss{lines};
      std::string line;
      bool supervisor_down = false;
      while (std::getline(ss, line)) {
        if (line.rfind("supervisor", 0) == 0) {
          supervisor_down = true;
        } else if (line.rfind("service ", 0) == 0) {
          // "service NAME normal|error": a normal exit is a service that
          // finished its work (a failure is the supervisor's to restart).
          auto rest = line.substr(8);
          auto sp = rest.rfind(' ');
          if (rest.substr(sp + 1) == "normal") {
            log(log_level::info, o.node_name, "service " + rest.substr(0, sp) + " finished");
            ctl.send("service-done " + rest.substr(0, sp));
          }
        }
      }
      if (supervisor_down) {
        auto reason = tn.node().await_stopped(0ms);
        code = fail(ctl, exit_supervisor,
                    fmt::format("node '{}': the supervisor stopped ({}); a "
                                "service failed more often than its restart "
                                "policy allows (see the log above)",
                                o.node_name, render(reason)));
        running = false;
      }
    }
    if (ctl.open() && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      bool closed = false;
      for (auto& line : ctl.receive(closed))
        handle_line(line);
      if (closed && running) {
        log(log_level::error, o.node_name,
            "the launcher went away (control channel closed): stopping");
        code = exit_orphaned;
        running = false;
      }
    }
  }
  anon_send_exit(watcher, caf::exit_reason::user_shutdown);
  tn.stop();
  log(log_level::info, o.node_name, "stopped");
  ctl.send("stopped");
  ::close(down_pipe[0]);
  ::close(down_pipe[1]);
  return code;
}

} // namespace mycelium::topology
