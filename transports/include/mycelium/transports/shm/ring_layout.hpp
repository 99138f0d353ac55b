#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace mycelium::transports::shm {

/// The control block of one single-producer / single-consumer byte ring as
/// it lies in shared memory. Data only: the code that acts on it is
/// `ring_writer` / `ring_reader` (spsc_ring.hpp). Positions are byte counts
/// since the ring was created; they only grow, so `head - tail` is the fill
/// level and wrap-around needs no extra flag. The producer's and consumer's
/// words sit on separate cache lines so that neither invalidates the other's.
///
/// ```
///  offset  size  field
///       0     8  head            producer position (release on publish)
///       8    56  (padding)
///      64     8  tail            consumer position (release on consume)
///      72    56  (padding)
///     128     4  consumer_sleeping  1 while the consumer blocks (futex word)
///     132     4  wakeups         futex sequence word the consumer waits on
///     136    56  (padding)
///     192        end; the data area (capacity bytes) follows
/// ```
struct ring_control {
  alignas(64) std::atomic<uint64_t> head{0};
  alignas(64) std::atomic<uint64_t> tail{0};
  alignas(64) std::atomic<uint32_t> consumer_sleeping{0};
  std::atomic<uint32_t> wakeups{0};
};

static_assert(sizeof(ring_control) == 192);
static_assert(offsetof(ring_control, tail) == 64);
static_assert(offsetof(ring_control, consumer_sleeping) == 128);
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "shared-memory positions must be lock-free atomics");

/// One record in the data area, always 8-byte aligned:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +---------------------------------------------------------------+
/// |                      length (u32, LE)                         |  0
/// +---------------------------------------------------------------+
/// |                       kind (u32, LE)                          |  4
/// +---------------------------------------------------------------+
/// |        frame bytes (length), then zero padding to 8 ...       |  8
/// ```
///
/// `kind` 1 is a frame; kind 2 ("wrap") fills the rest of the data area when
/// the next record does not fit before its end, and the reader continues at
/// offset 0. A record never straddles the end, so a reader never sees a torn
/// frame: it reads only below `head`, which the writer stores (release) after
/// the record's bytes.
struct record_header {
  uint32_t length;
  uint32_t kind;
};

static_assert(sizeof(record_header) == 8);

constexpr uint32_t record_frame = 1;
constexpr uint32_t record_wrap = 2;

/// Rounds `n` up to a multiple of 8.
constexpr uint64_t align8(uint64_t n) noexcept {
  return (n + 7) & ~uint64_t{7};
}

} // namespace mycelium::transports::shm
