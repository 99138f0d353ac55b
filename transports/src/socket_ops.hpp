#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include <caf/expected.hpp>

namespace mycelium::transports::detail {

/// Listens on `path` with an owner-only (0600) AF_UNIX socket. A socket
/// file left by a dead process (connect refused) is replaced; one that a
/// live process accepts on is never stolen (`address_in_use`).
caf::expected<int> listen_unix(const std::string& path);

/// Connects to the AF_UNIX socket at `path` (blocking, immediate).
caf::expected<int> connect_unix(const std::string& path);

/// Listens on `host`:`port` (port 0: the system picks) with SO_REUSEADDR.
/// Returns the socket and the bound port.
caf::expected<std::pair<int, uint16_t>> listen_tcp(const std::string& host,
                                                   uint16_t port);

/// Connects to `host`:`port` within `timeout`, with TCP_NODELAY.
caf::expected<int> connect_tcp(const std::string& host, uint16_t port,
                               std::chrono::milliseconds timeout);

} // namespace mycelium::transports::detail
