#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/error.hpp>

#include "mycelium/transports/shm/ring_layout.hpp"
#include "mycelium/transports/shm/spsc_ring.hpp"

namespace mycelium::transports::shm {

/// How a ring's consumer waits for data.
enum class wait_mode : uint8_t {
  busy_poll,       ///< spin on the ring's head; one CPU per consumer, lowest latency
  spin_then_block, ///< spin `spin_count` checks, then sleep on a futex
  block,           ///< sleep on the futex at once
};

/// "busy_poll", "spin_then_block" or "block".
const char* to_string(wait_mode x) noexcept;

/// Parses the names above; `config_invalid` naming the accepted values else.
caf::error parse_wait_mode(const std::string& text, wait_mode& out);

/// Waits for a frame in the ring read by `reader`, whose control block is
/// `ctl`, using the futex word `ctl.wakeups` (process-shared: it lies in the
/// segment). Returns true when a frame may be ready, false after `timeout`.
///
/// Protocol (Dekker style, seq_cst fences on both sides): the consumer reads
/// `wakeups`, sets `consumer_sleeping`, fences, re-checks the ring and only
/// then sleeps on `wakeups`; the producer publishes `head`, fences, and wakes
/// only when it sees `consumer_sleeping` (see `notify_consumer`). So a
/// wake-up is never lost and the producer pays no system call while the
/// consumer is spinning.
bool wait_for_data(ring_reader& reader, ring_control& ctl, wait_mode mode,
                   uint32_t spin_count, std::chrono::nanoseconds timeout) noexcept;

/// Called by the producer after `commit`: wakes a sleeping consumer.
/// Costs one fence and one load when the consumer is not asleep.
void notify_consumer(ring_control& ctl) noexcept;

} // namespace mycelium::transports::shm
