#pragma once

#include <chrono>
#include <cstdint>
#include <string>


#include "mycelium/transports/loop/idle_strategy.hpp"
#include "mycelium/transports/shm/ring_layout.hpp"
#include "mycelium/transports/shm/spsc_ring.hpp"

namespace mycelium::transports::shm {

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
/// `spin_then_block` spins for `spin` before it sleeps.
bool wait_for_data(ring_reader& reader, ring_control& ctl, transports::wait_mode mode,
                   std::chrono::nanoseconds spin,
                   std::chrono::nanoseconds timeout) noexcept;

/// Called by the producer after `commit`: wakes a sleeping consumer.
/// Costs one fence and one load when the consumer is not asleep.
void notify_consumer(ring_control& ctl) noexcept;

} // namespace mycelium::transports::shm
