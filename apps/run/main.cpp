// mycelium-run: launches a topology.toml deployment on this host and
// inspects it.
//
//   mycelium-run topology.toml                 run every node (same as `run`)
//   mycelium-run plan topology.toml [--json]   print the resolved deployment
//   mycelium-run status topology.toml [--json] ask the running launcher
//   mycelium-run logs topology.toml NODE...    follow nodes' logs
//   mycelium-run clean topology.toml           remove what a crash left behind
//
// docs/topology.md describes the file and every command.

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cpu_affinity.hpp"
#include "launcher.hpp"
#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/topology/plan_report.hpp"
#include "mycelium/topology/topology_loader.hpp"

namespace {

namespace fs = std::filesystem;
namespace tp = mycelium::topology;
using namespace std::chrono_literals;

int error(const std::string& text, int code = 2) {
  std::cerr << "mycelium-run: error: " << text << "\n";
  return code;
}

/// Runs `argv` and returns its exit status; its stdout goes to `out`, its
/// stderr to `err`.
int capture(const std::vector<std::string>& args, std::string& out, std::string& err,
            const std::string& cwd = {}) {
  int o[2];
  int e[2];
  if (::pipe2(o, O_CLOEXEC) != 0 || ::pipe2(e, O_CLOEXEC) != 0) {
    err = ::strerror(errno);
    return -1;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(o[1], 1);
    ::dup2(e[1], 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      std::fprintf(stderr, "cannot enter the node's directory %s: %s\n", cwd.c_str(),
                   ::strerror(errno));
      ::_exit(127);
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "cannot execute %s: %s\n", argv[0], ::strerror(errno));
    ::_exit(127);
  }
  ::close(o[1]);
  ::close(e[1]);
  pollfd fds[2] = {{o[0], POLLIN, 0}, {e[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, 60000) <= 0)
      break;
    for (auto& f : fds) {
      if (f.fd < 0 || f.revents == 0)
        continue;
      auto n = ::read(f.fd, buf, sizeof(buf));
      if (n <= 0) {
        ::close(f.fd);
        f.fd = -1;
        --open_fds;
      } else {
        (f.fd == fds[0].fd ? out : err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return st;
}

/// Loads, resolves and checks a topology: every service type must be one
/// its node's binary registers (asked with `--list-types`).
struct loaded {
  tp::topology t;
  tp::deployment_plan plan;
};

caf::expected<loaded> load(const std::string& file, const std::string& binary) {
  auto t = tp::load_topology(file);
  if (!t)
    return std::move(t.error());
  if (!binary.empty())
    for (auto& n : t->nodes)
      if (n.runtime == tp::node_runtime::cpp)
        n.binary = binary;
  tp::registered_types known;
  for (auto& n : t->nodes) {
    if (n.runtime != tp::node_runtime::cpp || known.count(n.binary))
      continue;
    if (n.binary.empty())
      return mycelium::make_error(
        mycelium::errc::config_invalid,
        fmt::format("{}: node '{}' runs C++ services but no node binary is "
                    "named: add binary = \"my-node\" at the top of the file or "
                    "pass --binary", t->file, n.name));
    std::string out;
    std::string err;
    auto st = capture({n.binary, "--list-types"}, out, err);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      return mycelium::make_error(
        mycelium::errc::config_invalid,
        fmt::format("{}: node '{}': cannot run its binary '{}' --list-types: {}",
                    t->file, n.name, n.binary,
                    err.empty() ? "it failed" : err.substr(0, err.find('\n'))));
    std::set<std::string> types;
    std::stringstream ss{out};
    std::string line;
    while (std::getline(ss, line))
      if (!line.empty())
        types.insert(line);
    known.emplace(n.binary, std::move(types));
  }
  if (auto err = tp::check_service_types(*t, known))
    return err;
  // `cpus` names this host's CPUs: checked here, before anything starts.
  for (auto& n : t->nodes) {
    mycelium::run::cpu_affinity pin{};
    if (!n.cpus.empty() && t->daemon_for(n) == nullptr)
      if (auto err = mycelium::run::resolve_cpus(n.cpus, pin); !err.empty())
        return mycelium::make_error(
          mycelium::errc::config_invalid,
          fmt::format("{}:{}:{}: node '{}' key 'cpus': {}", t->file, n.cpus_at.line,
                      n.cpus_at.column, n.name, err));
  }
  auto p = tp::plan_deployment(*t);
  if (!p)
    return std::move(p.error());
  return loaded{std::move(*t), std::move(*p)};
}

int cmd_plan(const std::string& file, const std::string& binary, bool json) {
  auto l = load(file, binary);
  if (!l)
    return error(mycelium::render(l.error()));
  tp::service_interest interest;
  for (auto& n : l->t.nodes) {
    // C++ and Python nodes run the same node main, which can describe;
    // command nodes (OCaml, ...) cannot.
    std::vector<std::string> argv;
    if (n.runtime == tp::node_runtime::cpp)
      argv = {n.binary};
    else if (n.runtime == tp::node_runtime::python)
      argv = {"/usr/bin/python3", "-m", "mycelium.node"};
    else
      continue;
    for (auto* a : {"--describe", "--topology", l->t.file.c_str(), "--node", n.name.c_str()})
      argv.emplace_back(a);
    std::string out;
    std::string err;
    // In the node's directory, as when it runs: relative paths in params
    // (data files) resolve the same way.
    auto workdir = n.workdir.empty()
                     ? std::filesystem::path{l->t.file}.parent_path().string()
                     : n.workdir;
    auto st = capture(argv, out, err, workdir);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      return error(fmt::format("node '{}': its services did not start for --describe: {}",
                               n.name, err));
    std::stringstream ss{out};
    std::string line;
    auto& mine = interest[n.name];
    while (std::getline(ss, line)) {
      std::stringstream ls{line};
      std::string tag;
      std::string svc;
      std::string types;
      ls >> tag >> svc >> types;
      if (tag != "service")
        continue;
      auto& v = mine[svc];
      std::stringstream ts{types};
      std::string ty;
      while (std::getline(ts, ty, ','))
        v.push_back(ty);
    }
  }
  std::cout << (json ? tp::plan_json(l->t, l->plan, interest) + "\n"
                     : tp::plan_table(l->t, l->plan, interest));
  return 0;
}

int cmd_status(const std::string& file, bool json) {
  auto t = tp::load_topology(file);
  if (!t)
    return error(mycelium::render(t.error()));
  mycelium::run::deployment_dir dir{t->socket_dir};
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, dir.control_socket().c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return error(fmt::format("deployment '{}' is not running (no launcher answers on "
                             "{}: {})", t->name, dir.control_socket(),
                             ::strerror(errno)),
                 1);
  std::string req = json ? "status json\n" : "status text\n";
  [[maybe_unused]] auto w = ::write(fd, req.data(), req.size());
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0)
    out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (out.empty())
    return error("the launcher did not answer within 5 s", 1);
  std::cout << out;
  return 0;
}

/// True while a launcher holds the deployment's lock.
bool launcher_running(const mycelium::run::deployment_dir& dir) {
  int fd = ::open(dir.lock_file().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

int cmd_logs(const std::string& file, const std::vector<std::string>& nodes,
             std::string log_dir, bool follow) {
  auto t = tp::load_topology(file);
  if (!t)
    return error(mycelium::render(t.error()));
  mycelium::run::deployment_dir dir{t->socket_dir};
  if (log_dir.empty())
    log_dir = !t->log_dir.empty() ? t->log_dir : dir.default_log_dir();
  struct tail {
    std::string node;
    std::ifstream in;
  };
  std::vector<tail> tails;
  for (auto& n : nodes) {
    if (t->find_node(n) == nullptr && n != "mycelium-run")
      return error(fmt::format("no node is named '{}' in {}", n, t->file));
    auto path = log_dir + "/" + n + ".log";
    tails.push_back({n, std::ifstream{path}});
    if (!tails.back().in)
      return error(fmt::format("no log for node '{}' at {} (has the deployment run? "
                               "pass --log-dir if it ran with one)", n, path),
                   1);
  }
  for (;;) {
    bool any = false;
    for (auto& tl : tails) {
      std::string line;
      while (std::getline(tl.in, line)) {
        any = true;
        std::cout << (tails.size() > 1 ? "[" + tl.node + "] " : "") << line << "\n";
      }
      tl.in.clear(); // at EOF: keep the position, read more later
    }
    std::cout.flush();
    if (!follow || (!any && !launcher_running(dir)))
      return 0;
    if (!any)
      std::this_thread::sleep_for(200ms); // a tail -f, not a synchronisation
  }
}

int cmd_clean(const std::string& file) {
  auto t = tp::load_topology(file);
  if (!t)
    return error(mycelium::render(t.error()));
  auto removed = mycelium::run::clean_deployment({t->socket_dir});
  if (!removed)
    return error(mycelium::render(removed.error()), 1);
  for (auto& r : *removed)
    std::cout << "removed " << r << "\n";
  std::cout << (removed->empty() ? "nothing to clean" : "clean") << " (" << t->socket_dir
            << ")\n";
  return 0;
}

/// Parses "10s", "500ms", "2min" for --duration and the timeouts.
bool parse_duration(const std::string& text, std::chrono::milliseconds& out) {
  auto d = mycelium::config::parse_duration(text);
  if (!d)
    return false;
  out = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  return true;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mycelium-run: launch and inspect a Mycelium deployment described by "
               "a topology.toml (docs/topology.md)"};
  app.require_subcommand(0, 1);
  std::string file;
  std::string binary;
  bool json = false;
  mycelium::run::run_options ro;
  std::string duration;
  std::string ready_timeout = "30s";
  std::string stop_timeout = "10s";
  int64_t shuffle = -1;

  auto* run = app.add_subcommand("run", "run every node of the topology on this host "
                                        "(the default command)");
  auto add_run_options = [&](CLI::App* c) {
    c->add_option("--duration", duration, "stop after this long once every node is "
                                          "ready, e.g. 30s");
    c->add_option("--until-exit", ro.until_exit,
                  "stop when this service finishes (exits normally)");
    c->add_option("--log-dir", ro.log_dir, "write one log file per node here "
                                           "(default: <socket_dir>/logs)");
    c->add_flag("--json", ro.json, "write the merged log as JSON lines");
    c->add_option("--ready-timeout", ready_timeout, "how long nodes may take to be ready");
    c->add_option("--stop-timeout", stop_timeout,
                  "how long a node may take to stop before SIGKILL");
    c->add_flag("--quiet", ro.quiet, "no launcher messages (only the nodes' output)");
    c->add_option("--binary", binary, "node binary for every C++ node (overrides binary = ...)");
    c->add_option("--shuffle", shuffle, "tests: start the nodes in a random order "
                                        "seeded by this number, 0-50 ms apart");
  };
  run->add_option("topology", file, "the topology file")->required();
  add_run_options(run);

  auto* plan = app.add_subcommand("plan", "print the resolved deployment: nodes, "
                                          "services, links and the types they carry");
  plan->add_option("topology", file, "the topology file")->required();
  plan->add_flag("--json", json, "as JSON");
  plan->add_option("--binary", binary, "node binary for every C++ node");

  auto* status = app.add_subcommand("status", "show the nodes and links of the running "
                                              "deployment");
  status->add_option("topology", file, "the topology file")->required();
  status->add_flag("--json", json, "as JSON");

  std::vector<std::string> log_nodes;
  bool no_follow = false;
  auto* logs = app.add_subcommand("logs", "follow the logs of nodes");
  logs->add_option("topology", file, "the topology file")->required();
  logs->add_option("nodes", log_nodes, "node names (mycelium-run for the launcher)")
    ->required();
  logs->add_option("--log-dir", ro.log_dir, "the log directory the deployment used");
  logs->add_flag("--no-follow", no_follow, "print what is there and exit");

  auto* clean = app.add_subcommand("clean", "remove what a crashed deployment left "
                                            "behind (sockets, shared memory)");
  clean->add_option("topology", file, "the topology file")->required();

  // `mycelium-run FILE [options]` is `mycelium-run run FILE [options]`.
  std::vector<std::string> args(argv + 1, argv + argc);
  static const std::set<std::string> commands{"run", "plan", "status", "logs", "clean"};
  if (!args.empty() && args[0].rfind("-", 0) != 0 && commands.count(args[0]) == 0)
    args.insert(args.begin(), "run");
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (plan->parsed())
    return cmd_plan(file, binary, json);
  if (status->parsed())
    return cmd_status(file, json);
  if (logs->parsed())
    return cmd_logs(file, log_nodes, ro.log_dir, !no_follow);
  if (clean->parsed())
    return cmd_clean(file);
  if (!run->parsed()) {
    std::cout << app.help();
    return 2;
  }
  if (!duration.empty()) {
    std::chrono::milliseconds d{};
    if (!parse_duration(duration, d))
      return error("--duration \"" + duration + "\" is not a duration such as 30s or 500ms");
    ro.duration = d;
  }
  if (!parse_duration(ready_timeout, ro.ready_timeout))
    return error("--ready-timeout \"" + ready_timeout + "\" is not a duration");
  if (!parse_duration(stop_timeout, ro.stop_timeout))
    return error("--stop-timeout \"" + stop_timeout + "\" is not a duration");
  if (shuffle >= 0)
    ro.shuffle_seed = static_cast<uint64_t>(shuffle);
  auto l = load(file, binary);
  if (!l)
    return error(mycelium::render(l.error()));
  if (!ro.until_exit.empty() && l->t.find_service(ro.until_exit) == nullptr)
    return error(fmt::format("--until-exit: no service is named '{}' in {}", ro.until_exit,
                             l->t.file));
  return mycelium::run::run_deployment(l->t, l->plan, ro);
}
