// The connecting side of a Unix, TCP or shared-memory link: one broker that
// keeps one connection to the configured peer, connecting without blocking
// the I/O loop and reconnecting with exponential backoff and jitter.

#pragma once

#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "link_shared.hpp"

namespace mycelium::transports::detail {

/// Spawns the broker that connects (and reconnects) to the configured peer.
/// Thread-safety: any thread (link::start).
caf::actor spawn_connector(caf::actor_system& sys,
                           std::shared_ptr<link_shared> sh);

} // namespace mycelium::transports::detail
