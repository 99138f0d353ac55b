#pragma once

#include "mycelium/codec.hpp"

#include "node_session.hpp"

// Internal to node binaries: the node daemon (`NODE_BINARY --serve`).
namespace mycelium::topology {

/// Runs the node binary as the node daemon of its host: publishes a daemon
/// actor on `o.serve` (HOST:PORT, or PORT on 127.0.0.1; port 0 picks one)
/// through CAF's remote actors, prints "mycelium-node daemon listening on
/// HOST:PORT" on stdout, and runs each node a launcher's stand-in asks for
/// inside this process, on one actor system, until SIGINT or SIGTERM; then
/// it stops them all. Refuses an address other than loopback without
/// `o.secret_file`. Returns a `node_exit` code. Blocking; call it from
/// main, before any other thread exists.
int serve_daemon(const node_options& o, const schema_descriptor& schema);

} // namespace mycelium::topology
