#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/settings.hpp>

#include "mycelium/actors/placement.hpp"
#include "mycelium/actors/supervisor.hpp"
#include "mycelium/bus/overflow_guard.hpp"
#include "mycelium/transports/link_config.hpp"

namespace mycelium::topology {

/// A position in the topology file (1-based; 0 when not from a file).
struct source_ref {
  uint32_t line = 0;
  uint32_t column = 0;
};

/// What runs a node's process.
enum class node_runtime : uint8_t {
  cpp,     ///< the project's node binary (`--topology FILE --node NAME`)
  python,  ///< `python3 -m mycelium.node --topology FILE --node NAME`
  command, ///< an external program (e.g. an OCaml node), handed the node's
           ///< settings in its environment
};

/// "cpp", "python" or "command".
const char* to_string(node_runtime x) noexcept;

/// When the launcher restarts a node whose process ended.
enum class restart_mode : uint8_t {
  never,
  on_failure, ///< a non-zero exit or a signal
  always,     ///< also after a clean exit
};

/// "never", "on-failure" or "always".
const char* to_string(restart_mode x) noexcept;

/// How the launcher restarts one node. Plain data.
struct node_restart {
  restart_mode mode = restart_mode::on_failure;
  /// Past this many restarts within `window` the deployment stops.
  size_t max_restarts = 5;
  std::chrono::milliseconds window{std::chrono::seconds{60}};
  /// The delay before a restart doubles from `backoff_min` to `backoff_max`.
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{std::chrono::seconds{5}};
};

/// One service instance of the deployment.
struct service_spec {
  std::string name;  ///< instance name, unique in the deployment
  std::string type;  ///< registry name, or "python:pkg.module:Class"
  std::string node;  ///< the node it runs on
  caf::settings params;
  mycelium::placement where = placement::pool;
  restart_policy restart; ///< the node supervisor's policy for it
  source_ref at;      ///< where it is named in its node's `services`
  source_ref type_at; ///< where its type is given (or `at`)
};

/// Overrides of link settings; unset fields keep the defaults. Plain data.
struct link_settings {
  std::optional<transports::wait_mode> wait;
  std::optional<std::chrono::microseconds> spin;
  std::optional<uint64_t> ring_capacity;
  std::optional<overflow_policy> overflow;
  std::optional<size_t> send_queue;
  std::optional<uint32_t> max_payload;
  std::optional<std::chrono::milliseconds> heartbeat_interval;
  std::optional<std::chrono::milliseconds> peer_timeout;
  /// Path of a file holding the shared secret (resolved, checked readable).
  std::optional<std::string> secret_file;

  /// `other`'s set fields over this one's.
  void merge(const link_settings& other);
  /// Applies the set fields to `cfg` (reads the secret file).
  caf::error apply(transports::link_config& cfg) const;
};

/// A `[[links]]` entry: settings for the link between two nodes, or (with
/// `between` empty) for every link.
struct link_override {
  std::vector<std::string> between;
  /// Forces the link's kind (same host only for shm and unix).
  std::optional<transports::link_kind> kind;
  link_settings settings;
  source_ref at;
};

/// One node: one process of the deployment.
struct node_spec {
  std::string name;
  /// Host name or address; "" is the launcher's host. Nodes on other hosts
  /// are reached over TCP at `host:port`.
  std::string host;
  uint16_t port = 0;
  /// How peers on the same host reach it: `unix` or `shm`, and the path
  /// of its socket (default `<socket_dir>/<name>.sock`).
  transports::link_kind local_kind = transports::link_kind::unix_socket;
  std::string endpoint_path;
  node_runtime runtime = node_runtime::cpp;
  /// `cpp`: the node binary (default: the topology's `binary`).
  std::string binary;
  /// `command`: the program and its arguments.
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::string workdir; ///< "" = the topology file's directory
  node_restart restart;
  /// Whether the process speaks the launcher's control protocol on fd 3
  /// (docs/topology.md): true for cpp and python nodes; a command node that
  /// does says `control = true`, else it counts as ready once it runs.
  bool control = true;
  /// Nodes that must be ready before this one starts (by name).
  std::vector<std::string> after;
  std::vector<std::string> services; ///< instance names, in file order
  /// How the node's I/O loop idles while loop-placed services run
  /// (`loop_wait`, `loop_spin`); unset: as `[link_defaults]` says for links.
  std::optional<transports::wait_mode> loop_wait;
  std::optional<std::chrono::microseconds> loop_spin;
  /// The CPUs the launcher pins the node's process to, all its threads
  /// (`cpus`); a negative number counts from the last CPU the launcher may
  /// use (-1: the last). Empty: not pinned. Resolved when the node starts.
  std::vector<int> cpus;
  source_ref cpus_at; ///< where `cpus` is given
  source_ref at;

  /// True if the node runs on the launcher's host (without a daemon, the
  /// launcher starts exactly these).
  bool local() const noexcept;

  /// The address peers reach it at: `host`, or 127.0.0.1 for this host.
  std::string address() const;
};

/// A `[[daemons]]` entry: the node daemon of one host (the node binary run
/// there as `NODE_BINARY --serve HOST:PORT`). The launcher starts every node
/// whose `host` is this one through it: the node's services run inside the
/// daemon's process, and a local stand-in process relays the control
/// protocol and the logs (docs/topology.md section 7). Plain data.
struct daemon_spec {
  std::string host;        ///< the nodes' `host` it serves, and its address
  uint16_t port = 0;       ///< its listening port
  std::string secret_file; ///< resolved; "" = no authentication (loopback only)
  source_ref at;
};

/// A whole topology file, validated. Plain data.
struct topology {
  std::string file;     ///< the file it came from (absolute)
  std::string name;     ///< deployment name (default: the file's stem)
  std::string socket_dir;
  std::string shm_dir = "/dev/shm";
  std::string binary;   ///< default node binary of `cpp` nodes
  std::string log_dir;  ///< "" = no per-node log files
  std::vector<node_spec> nodes;          ///< in file order
  std::vector<service_spec> services;    ///< in node, then list order
  link_settings link_defaults;           ///< `[link_defaults]`
  std::vector<link_override> links;      ///< `[[links]]`
  std::vector<daemon_spec> daemons;      ///< `[[daemons]]`
  std::map<std::string, source_ref> key_at; ///< where top-level keys are

  const node_spec* find_node(const std::string& name) const;
  const service_spec* find_service(const std::string& name) const;
  /// The services of `node`, in order.
  std::vector<const service_spec*> services_of(const std::string& node) const;
  /// The daemon that starts `n`, or null (the launcher starts it itself).
  const daemon_spec* daemon_for(const node_spec& n) const;
  /// True if both nodes run on one host.
  bool same_host(const node_spec& a, const node_spec& b) const;
  /// How `n`'s I/O loop idles by its `loop_wait` and `loop_spin`; a key it
  /// does not set is as `[link_defaults]` says for links (`spin_then_block`,
  /// 100 us). No spin unless the mode is `spin_then_block`.
  transports::idle_strategy loop_idle(const node_spec& n) const;
};

/// The services of `node` as text for a program that is not a C++ node (the
/// environment variable MYCELIUM_SERVICES of command nodes): one line per
/// service, blank-separated `key=value` pairs: `name=`, `type=`,
/// `placement=`, then `p.KEY=VALUE` per parameter (nested tables as
/// `p.a.b=`; lists as their elements joined by ','). Values are
/// percent-encoded: '%', ' ', '=', ',', newline and other control bytes as
/// %XX. Thread-safe.
std::string services_text(const topology& t, const std::string& node);

} // namespace mycelium::topology
