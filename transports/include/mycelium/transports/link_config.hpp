#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/error.hpp>

#include "mycelium/bus/overflow_guard.hpp"
#include "mycelium/transports/loop/idle_strategy.hpp"
#include "mycelium/transports/shm/spsc_ring.hpp"
#include "mycelium/wire/frame_header.hpp"

namespace mycelium::transports {

/// The byte stream a link runs over.
enum class link_kind : uint8_t {
  unix_socket, ///< AF_UNIX stream socket; `address` is a file path
  tcp,         ///< TCP; `address` is a host name or IP, plus `port`
  shm,         ///< shared-memory rings, same machine; `address` is the path
               ///< of the Unix socket that carries the handshake and control
};

/// "unix", "tcp" or "shm".
const char* to_string(link_kind x) noexcept;

/// Parses "unix", "tcp" or "shm"; `config_invalid` naming the accepted
/// values else.
caf::error parse_link_kind(const std::string& text, link_kind& out);

/// Which side opens the connection.
enum class link_role : uint8_t {
  listen,  ///< accept any number of peers on `address`
  connect, ///< connect to `address`, reconnect with backoff when lost
};

/// Everything one link needs; every field has a safe default except the
/// address. Plain data, copyable.
struct link_config {
  /// Names the link in logs, statistics and errors.
  std::string name = "link";
  link_kind kind = link_kind::tcp;
  link_role role = link_role::connect;
  /// Unix: socket file path. TCP: host to connect to, or address to listen
  /// on (loopback by default; "0.0.0.0" listens on every interface).
  std::string address = "127.0.0.1";
  /// TCP port; 0 with `listen` lets the system pick (see `link::port`).
  uint16_t port = 0;

  /// Whether messages that arrive over this link go on to the node's other
  /// links, and interest held by other links is advertised over this one.
  /// True builds a tree of links (a message may cross several); false is for
  /// a full mesh, where every pair of nodes has its own link and a message
  /// crosses exactly one (what topologies build).
  bool relay = true;

  // -- frames and queues ---------------------------------------------------------
  /// Largest payload accepted in either direction (frames over it are
  /// refused with a counter and an error log, never truncated).
  uint32_t max_payload = wire::default_max_payload;
  /// Messages in flight towards the peer before `overflow` applies.
  size_t send_queue = 4096;
  overflow_policy overflow = overflow_policy::block;
  /// How long `block` makes a publisher wait before `back_pressured`.
  std::chrono::milliseconds block_timeout{100};

  // -- waiting ----------------------------------------------------------------------
  /// How the node's I/O loop idles while this link exists (every kind: a
  /// socket link that busy-polls reads without an epoll wake-up). The loop
  /// follows the most eager request of all its links and services.
  wait_mode wait = wait_mode::spin_then_block;
  /// How long `spin_then_block` polls after the last work before it sleeps.
  std::chrono::microseconds spin{100};

  /// `wait` and `spin` as the loop's idle strategy.
  idle_strategy idle() const noexcept { return {wait, spin}; }

  // -- shared memory (kind shm) --------------------------------------------------
  /// Bytes of each ring (one per direction per peer), a power of two from 64
  /// bytes to 1 GiB. Bounds what is in flight towards the peer (instead of
  /// `send_queue`), and a frame (24-byte header + payload) must fit in half
  /// of it.
  uint64_t ring_capacity = uint64_t{4} << 20;

  // -- liveness -------------------------------------------------------------------
  /// A heartbeat goes out after this long without another frame.
  std::chrono::milliseconds heartbeat_interval{100};
  /// The peer counts as lost after this long without any frame from it
  /// (covers crashed, stopped and half-open peers).
  std::chrono::milliseconds peer_timeout{1000};
  /// Reconnect backoff (role `connect`): doubles from `min` to `max`, with
  /// up to 50 % random jitter.
  std::chrono::milliseconds reconnect_min{20};
  std::chrono::milliseconds reconnect_max{2000};
  /// Upper bound of one TCP connect attempt.
  std::chrono::milliseconds connect_timeout{2000};

  // -- security -------------------------------------------------------------------
  /// Shared secret; when set, every peer must prove it knows the same one
  /// (HMAC-SHA256 in the hello) or it is refused with `auth_failed`.
  std::string secret;

  /// "unix:/path", "shm:/path" or "tcp:host:port", for logs.
  std::string endpoint() const;

  /// Checks ranges and required fields; `config_invalid` naming the field.
  caf::error validate() const;
};

} // namespace mycelium::transports
