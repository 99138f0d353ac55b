#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "mycelium/topology/deployment_plan.hpp"
#include "mycelium/topology/topology.hpp"
#include "node_process.hpp"

namespace mycelium::run {

/// How `mycelium-run` runs a deployment.
struct run_options {
  std::optional<std::chrono::milliseconds> duration; ///< stop after this long
  std::string until_exit;                             ///< stop when it finishes
  std::string log_dir;                                ///< also one file per node
  bool json = false;                                  ///< logs as JSON lines
  std::chrono::milliseconds ready_timeout{30000};
  std::chrono::milliseconds stop_timeout{10000};
  bool quiet = false;                                 ///< no launcher chatter
  /// Tests only: start the nodes in a random order (seeded), 0-50 ms apart,
  /// ignoring `after`, to show that any start order works.
  std::optional<uint64_t> shuffle_seed;
};

/// The deployment directory of a topology (`socket_dir`): the launcher's
/// lock, control socket and state, and the nodes' sockets.
struct deployment_dir {
  std::string root;
  std::string lock_file() const { return root + "/launcher.lock"; }
  std::string control_socket() const { return root + "/launcher.sock"; }
  std::string default_log_dir() const { return root + "/logs"; }
};

/// Removes what a crashed deployment left in `dir` (sockets, the control
/// socket) and every stale shared-memory segment. Fails, touching nothing,
/// while a live launcher holds the lock. Returns what it removed.
caf::expected<std::vector<std::string>> clean_deployment(const deployment_dir& dir);

/// Runs a whole deployment on this host: starts every node in dependency
/// order, merges their logs, restarts crashed nodes by policy, serves
/// `status`, and on SIGINT/SIGTERM (or --duration, --until-exit) stops the
/// nodes in reverse order, killing what does not stop in time. Returns the
/// process exit code: 0 when everything started and stopped cleanly, 1 when
/// a node failed (the message names it), 2 for a bad topology or a
/// deployment that is already running.
///
/// Thread-safety: one launcher per process, on its main thread.
int run_deployment(const topology::topology& t, const topology::deployment_plan& p,
                   const run_options& o);

} // namespace mycelium::run
