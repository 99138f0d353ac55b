#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>

namespace mycelium {

/// Where a service's handlers run. The same service class runs in either
/// place without a code change; `node::start` (and later topology.toml)
/// chooses.
enum class placement : uint8_t {
  /// CAF's worker pool: handlers may run long or block without delaying
  /// anything but the service itself. A message from another process costs
  /// a wake-up of a worker thread.
  pool,
  /// The node's I/O loop (the middleman's thread that polls rings and
  /// sockets): a frame is decoded and handled on the thread that read it,
  /// a publish to a link writes from that thread, and between two loop
  /// services a message never leaves it. A handler delays every link and
  /// loop service of the node while it runs.
  loop,
};

/// "pool" or "loop".
const char* to_string(placement x) noexcept;

/// Parses "pool" or "loop"; `config_invalid` naming the accepted values else.
caf::error parse_placement(const std::string& text, placement& out);

} // namespace mycelium
