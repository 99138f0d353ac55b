#pragma once

#include <cstdint>

#include "mycelium/transports/shm/ring_layout.hpp"
#include "mycelium/transports/shm/ring_waiter.hpp"

namespace mycelium::transports::shm::detail {

/// What `shm_multiplexer` services: the consumer end of one incoming ring.
/// Implemented by the shm link's connection.
///
/// Thread-safety: every call happens on the I/O thread.
class ring_poller {
public:
  virtual ~ring_poller();

  /// Takes the frames waiting in the ring (a bounded batch, so one busy ring
  /// cannot starve the others); true if it took any.
  virtual bool poll() = 0;

  /// Whether a frame may be waiting (cheap, no side effects).
  virtual bool ready() const noexcept = 0;

  /// The ring's control block (its `consumer_sleeping` flag).
  virtual ring_control& incoming() noexcept = 0;

  wait_mode mode = wait_mode::spin_then_block;
  uint32_t spin_count = 0;
};

} // namespace mycelium::transports::shm::detail
