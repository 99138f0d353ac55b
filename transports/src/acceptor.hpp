// The listening side of a Unix, TCP or shared-memory link: one broker
// holding the listening socket (a CAF doorman) that forks one connection
// broker per accepted peer.

#pragma once

#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "link_shared.hpp"

namespace mycelium::transports::detail {

/// Spawns the broker that listens on `fd` and forks one broker per peer.
/// Thread-safety: any thread (link::start).
caf::actor spawn_acceptor(caf::actor_system& sys, int fd,
                          std::shared_ptr<link_shared> sh);

} // namespace mycelium::transports::detail
