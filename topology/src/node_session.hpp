#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "mycelium/codec.hpp"
#include "mycelium/topology/deployment_plan.hpp"
#include "mycelium/topology/topology.hpp"

// Internal to node binaries: the run of one node of a topology, shared by a
// node process (node_main) and by a node daemon, which runs several.
namespace mycelium::topology {

class control_channel;

/// The exit codes of a node (docs/topology.md section 6).
enum node_exit : int {
  exit_ok = 0,
  exit_usage = 2,
  exit_start = 3,
  exit_peers = 4,
  exit_supervisor = 5,
  exit_orphaned = 6,
  exit_daemon = 7, ///< the node daemon of its host was not reached, refused, or went away
};

/// A node binary's command line.
struct node_options {
  std::string topology_file;
  std::string node_name;
  bool list_types = false;
  bool describe = false;
  int control_fd = -1;
  int64_t ready_timeout_ms = 30000;
  std::string serve;       ///< --serve HOST:PORT: run as a node daemon
  std::string secret_file; ///< --secret-file of a daemon
};

/// What tells a running node to stop: an fd that becomes readable, a
/// signalfd in a node process or an eventfd in a daemon. Thread-safety: one
/// reader.
struct stop_source {
  int fd = -1;
  bool signals = false; ///< `fd` is a signalfd
  std::string why;      ///< what an eventfd event means ("the daemon is stopping")

  /// Consumes one event and says what it was ("signal 15"); "" if none.
  std::string take() const;
};

/// Closes the file descriptors it holds when it goes (-1 entries are
/// skipped). Declare it before an actor system whose threads use them, so
/// that they close only after the system has stopped. Not thread-safe.
class fd_set_closer {
public:
  explicit fd_set_closer(std::initializer_list<int> fds) : fds_(fds) {}
  ~fd_set_closer();
  fd_set_closer(const fd_set_closer&) = delete;
  fd_set_closer& operator=(const fd_set_closer&) = delete;

private:
  std::vector<int> fds_;
};

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (threads created later
/// inherit the mask and never see them) and returns a stop source that
/// reads them from a signalfd; its fd is -1 if that failed. Call it from
/// main before any other thread exists.
stop_source signal_stop_source();

/// Sets up `cfg` for an actor system that runs nodes of `schema`: no console
/// log of CAF's own, and the schema's message types.
void prepare_node_config(caf::actor_system_config& cfg, const schema_descriptor& schema);

/// Prints "mycelium-node: error: TEXT", sends "error CODE TEXT" on the
/// control channel and returns `code`.
int fail(control_channel& ctl, int code, const std::string& text);

/// Runs node `o.node_name` in `sys` until it stops: starts its services and
/// links, speaks the launcher's control protocol on `control_fd` (-1: none;
/// the channel closes it) and stops on `stop`, a "stop" line, the control
/// channel's end or the supervisor's. Returns a `node_exit` code. Blocking;
/// `sys` must carry the schema's types and outlive the call.
int run_node_session(const node_options& o, const topology& t, const deployment_plan& plan,
                     const schema_descriptor& schema, caf::actor_system& sys,
                     int control_fd, const stop_source& stop);

} // namespace mycelium::topology
