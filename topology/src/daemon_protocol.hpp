#pragma once

#include <caf/atom.hpp>

// Internal: the messages between a node daemon (`NODE_BINARY --serve`) and
// the stand-in process the launcher starts for each of its nodes, over CAF's
// remote actors (docs/topology.md section 7). Both ends are the same binary.
//
//   stand-in -> daemon   (remote_auth_atom) and (remote_auth_atom, proof)
//                        first, when the daemon has a secret
//   stand-in -> daemon   (daemon_spawn_atom, topology_text, topology_path,
//                         node, ready_timeout_ms : int64, schema_digest_hex,
//                         relay : actor) -> ok | error
//   stand-in -> daemon   (daemon_ctl_atom, node, line): a launcher line
//   daemon -> relay      (daemon_ctl_atom, line): a node's control line
//   daemon -> relay      (daemon_log_atom, line): a node's log line
//   daemon -> relay      (daemon_exit_atom, code : int32): the node ended
//
// The daemon monitors the relay: when the stand-in ends (or its connection
// does), the node stops as a node process whose launcher went away does.
namespace mycelium::topology {

using daemon_spawn_atom = caf::atom_constant<caf::atom("mdspawn")>;
using daemon_ctl_atom = caf::atom_constant<caf::atom("mdctl")>;
using daemon_log_atom = caf::atom_constant<caf::atom("mdlog")>;
using daemon_exit_atom = caf::atom_constant<caf::atom("mdexit")>;
using daemon_done_atom = caf::atom_constant<caf::atom("mddone")>;
using daemon_stop_atom = caf::atom_constant<caf::atom("mdstop")>;

/// The label of the daemon's proofs (transports::remote_gate).
inline constexpr char daemon_auth_label[] = "mycelium-node-daemon-v1";

} // namespace mycelium::topology
