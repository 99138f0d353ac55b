#pragma once

#include "mycelium/codec.hpp"

#include "node_session.hpp"

// Internal to node binaries: the local stand-in of a node that runs in the
// node daemon of another host.
namespace mycelium::topology {

/// Runs node `o.node_name` of `t` in the daemon `d` of its host, as its
/// stand-in here: asks the daemon to start it, then relays the launcher's
/// control lines there and the node's control lines, log lines and exit
/// code back, so that the launcher sees an ordinary node process. Returns
/// the node's exit code, or `exit_daemon` when the daemon cannot be reached,
/// refuses, or goes away. Blocking; call it from main, before any other
/// thread exists.
int run_via_daemon(const node_options& o, const topology& t, const daemon_spec& d,
                   const schema_descriptor& schema);

} // namespace mycelium::topology
