#pragma once

#include <cstdint>

#include <sched.h>

#include "mycelium/detail/cpu_relax.hpp"

namespace mycelium::detail {

/// Idle turns of a spin-wait between two `sched_yield`s.
inline constexpr uint32_t spin_yield_interval = 64;

/// Idle turn number `turn` of a spin-wait that may last long (tens of
/// microseconds and more): `cpu_relax`, and on every
/// `spin_yield_interval`-th turn a `sched_yield`, so that a thread woken on this
/// CPU runs now instead of when the spin ends. On a machine with fewer CPUs
/// than spinning threads (this 2-vCPU VM with three nodes), the scheduler
/// does not preempt a spinner for a freshly woken thread, and a message
/// waited the whole spin (100 us by default) for the CPU of its receiver
/// (docs/benchmarks.md, "Spinning waits yield"). In a ping-pong the wait is
/// shorter than the interval and never yields.
///
/// Thread-safety: none needed; the caller counts its own turns.
inline void spin_step(uint32_t turn) noexcept {
  if ((turn % spin_yield_interval) == 0)
    sched_yield();
  else
    cpu_relax();
}

} // namespace mycelium::detail
