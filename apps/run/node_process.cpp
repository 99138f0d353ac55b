#include "node_process.hpp"

#include "cpu_affinity.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace mycelium::run {

const char* to_string(node_state x) noexcept {
  switch (x) {
    case node_state::idle: return "idle";
    case node_state::starting: return "starting";
    case node_state::started: return "started";
    case node_state::linked: return "linked";
    case node_state::ready: return "ready";
    case node_state::stopping: return "stopping";
    case node_state::backoff: return "backoff";
    case node_state::exited: return "exited";
  }
  return "?";
}

std::vector<std::string> command_of(const topology::node_spec& n,
                                    const topology::topology& t) {
  switch (n.runtime) {
    case topology::node_runtime::cpp:
      return {n.binary, "--topology", t.file, "--node", n.name, "--control-fd", "3"};
    case topology::node_runtime::python:
      return {"/usr/bin/python3", "-m", "mycelium.node", "--topology", t.file,
              "--node", n.name, "--control-fd", "3"};
    case topology::node_runtime::command:
      return n.command;
  }
  return {};
}

std::string describe_status(int st) {
  if (WIFEXITED(st))
    return fmt::format("exit code {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return fmt::format("killed by signal {} ({})", WTERMSIG(st), ::strsignal(WTERMSIG(st)));
  return fmt::format("wait status {}", st);
}

std::string spawn(node_process& p, const topology::topology& t,
                  const std::vector<std::string>& extra_args,
                  const std::vector<std::string>& extra_env) {
  auto& n = *p.spec;
  auto argv_s = command_of(n, t);
  for (auto& a : extra_args)
    argv_s.push_back(a);
  if (argv_s.empty() || argv_s[0].empty())
    return fmt::format("node '{}' has no program to run (set binary = ... in the "
                       "topology or pass --binary)", n.name);
  int ctl[2];
  int out[2];
  int err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0)
    return std::string{"socketpair: "} + ::strerror(errno);
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    return std::string{"pipe: "} + ::strerror(errno);
  auto workdir = n.workdir.empty()
                   ? std::filesystem::path{t.file}.parent_path().string()
                   : n.workdir;
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e)
    env_s.emplace_back(*e);
  for (auto& [k, v] : n.env)
    env_s.push_back(k + "=" + v);
  env_s.push_back("MYCELIUM_TOPOLOGY=" + t.file);
  env_s.push_back("MYCELIUM_NODE=" + n.name);
  env_s.push_back("MYCELIUM_CONTROL_FD=3");
  for (auto& e : extra_env)
    env_s.push_back(e);
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_s)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  cpu_affinity pin{};
  if (!n.cpus.empty())
    if (auto err = resolve_cpus(n.cpus, pin); !err.empty())
      return "cpus: " + err;
  auto parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0)
    return std::string{"fork: "} + ::strerror(errno);
  if (pid == 0) {
    // The child: own process group, dies with the launcher, fd 3 is the
    // control channel, stdout/stderr go to the launcher's pipes. Only
    // async-signal-safe calls until exec.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent)
      ::_exit(127); // the launcher died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (ctl[1] == 3)
      ::fcntl(3, F_SETFD, 0); // dup2 onto itself would keep FD_CLOEXEC
    else
      ::dup2(ctl[1], 3);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      ::dup2(devnull, 0);
    if (!n.cpus.empty() && ::sched_setaffinity(0, sizeof(pin.mask), &pin.mask) != 0) {
      const char msg[] = "mycelium-run: cannot pin the node to its cpus (sched_setaffinity)\n";
      [[maybe_unused]] auto w = ::write(2, msg, sizeof(msg) - 1);
      ::_exit(126);
    }
    if (::chdir(workdir.c_str()) != 0) {
      const char msg[] = "mycelium-run: cannot change to the node's working directory\n";
      [[maybe_unused]] auto w = ::write(2, msg, sizeof(msg) - 1);
      ::_exit(126);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    const char msg[] = "mycelium-run: cannot execute the node's program: ";
    [[maybe_unused]] auto w1 = ::write(2, msg, sizeof(msg) - 1);
    [[maybe_unused]] auto w2 = ::write(2, argv[0], ::strlen(argv[0]));
    [[maybe_unused]] auto w3 = ::write(2, "\n", 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid); // also here, so the group exists before any kill
  ::close(ctl[1]);
  ::close(out[1]);
  ::close(err[1]);
  p.pid = pid;
  p.cpus = pin.cpus;
  p.control = topology::control_channel{ctl[0]};
  p.out_fd = out[0];
  p.err_fd = err[0];
  ::fcntl(p.out_fd, F_SETFL, O_NONBLOCK);
  ::fcntl(p.err_fd, F_SETFL, O_NONBLOCK);
  p.out_partial.clear();
  p.err_partial.clear();
  p.started_at = clock::now();
  p.state = node_state::starting;
  p.has_interest = false;
  p.last_error.clear();
  p.speaks_control = n.control;
  p.killed_by_us = false;
  return {};
}

} // namespace mycelium::run
