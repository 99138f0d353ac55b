#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "mycelium/bus/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/transports/link_config.hpp"
#include "mycelium/transports/link_stats.hpp"

namespace mycelium {
class node;
} // namespace mycelium

namespace mycelium::transports {

namespace detail {
struct link_shared;
} // namespace detail

/// A running link between this process's bus and one or more peer buses over
/// a Unix or TCP socket. Its connections are CAF brokers serviced by the
/// middleman's I/O loop (load `caf::io::middleman` into the actor system).
/// Published messages cross the link only for types the peer subscribed to,
/// and a received message is never sent back to where it came from.
///
/// A value handle: copies refer to the same link; the link stops when
/// `stop()` is called or the last copy is destroyed.
///
/// Thread-safety: every member function is thread-safe.
class link {
public:
  /// Starts a link for `b` on `sys`. Listening links bind before returning
  /// (errors name the address); connecting links return at once and connect
  /// in the background, retrying with backoff.
  static caf::expected<link> start(caf::actor_system& sys,
                                   std::shared_ptr<mycelium::bus> b,
                                   const schema_descriptor& schema,
                                   link_config cfg);

  /// Same for a node (its system, bus and name).
  static caf::expected<link> start(node& n, const schema_descriptor& schema,
                                   link_config cfg);

  link() = default;

  /// Counters and state right now.
  link_stats stats() const;

  /// Waits until `pred(stats())` holds or `timeout` passes; returns whether
  /// it held. Re-checks on every state change and at least every millisecond.
  bool await(const std::function<bool(const link_stats&)>& pred,
             std::chrono::milliseconds timeout) const;

  /// Waits until at least one peer is established.
  bool await_up(std::chrono::milliseconds timeout) const;

  /// Waits until the peers subscribed to `type_id`.
  bool await_peer_interest(uint32_t type_id, std::chrono::milliseconds timeout) const;

  /// The TCP port a listening link is bound to.
  uint16_t port() const;

  const link_config& config() const;

  /// Closes every connection, stops reconnecting, removes a Unix socket
  /// file it created and waits for its brokers to finish. Idempotent.
  void stop();

  explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace mycelium::transports
