#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "mycelium/topology/control_channel.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::run {

using clock = std::chrono::steady_clock;

/// Where a node's process stands, as the launcher sees it.
enum class node_state {
  idle,     ///< not started yet (waits for the nodes in its `after`)
  starting, ///< forked; its services and links are starting
  started,  ///< services started, listeners bound ("started")
  linked,   ///< every peer connected ("links-up"), waits for "go"
  ready,    ///< every peer asked for its interest ("ready")
  stopping, ///< asked to stop
  backoff,  ///< exited; restarts at `restart_at`
  exited,   ///< exited, not restarted
};

const char* to_string(node_state x) noexcept;

/// One node's process: spawned in its own process group with a control
/// channel (fd 3) and its stdout and stderr on pipes; the launcher reads
/// them. Owned by the launcher's thread.
struct node_process {
  const topology::node_spec* spec = nullptr;
  node_state state = node_state::idle;
  pid_t pid = -1;
  topology::control_channel control;
  int out_fd = -1;
  int err_fd = -1;
  std::string out_partial;
  std::string err_partial;
  clock::time_point started_at{};
  clock::time_point restart_at{};
  clock::time_point kill_at{};
  std::deque<clock::time_point> restarts; ///< within the restart window
  size_t restart_count = 0;
  std::vector<uint32_t> interest; ///< from "links-up"
  bool has_interest = false;
  int last_status = 0;            ///< wait status of the last exit
  bool speaks_control = true;     ///< false for external commands
  std::string last_error;         ///< from an "error" line
  pid_t go_sent_for = -1;         ///< the incarnation that got "go"
  bool killed_by_us = false;      ///< SIGKILLed after the stop timeout
  std::vector<int> cpus;          ///< the CPUs it is pinned to (`cpus`), if any

  bool alive() const noexcept { return pid > 0; }
};

/// Starts `p` for node `p.spec` of topology `t`: the argv for its runtime,
/// its environment (plus MYCELIUM_TOPOLOGY, MYCELIUM_NODE,
/// MYCELIUM_CONTROL_FD) and working directory (default: the topology's
/// directory). The child dies with SIGTERM when the launcher dies. Returns
/// "" or what failed.
std::string spawn(node_process& p, const topology::topology& t,
                  const std::vector<std::string>& extra_args,
                  const std::vector<std::string>& extra_env = {});

/// The command line that `spawn` runs, for messages and `plan`.
std::vector<std::string> command_of(const topology::node_spec& n,
                                    const topology::topology& t);

/// "exit code 3", "killed by signal 9 (Killed)".
std::string describe_status(int wait_status);

} // namespace mycelium::run
