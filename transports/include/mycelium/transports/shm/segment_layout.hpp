#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "mycelium/transports/shm/ring_layout.hpp"

namespace mycelium::transports::shm {

/// "MYCLSHM1" as a little-endian u64: the first bytes of every segment.
constexpr uint64_t segment_magic = 0x314D4853434C594Dull;

/// Bumped whenever the layout below changes; both sides must match.
constexpr uint32_t segment_layout_version = 1;

/// Lifecycle of a segment (`segment_header::state`).
enum class segment_state : uint32_t {
  creating = 0, ///< the creator is still initialising it
  ready = 1,    ///< initialised; waiting for the peer
  attached = 2, ///< both sides mapped it
  closed = 3,   ///< a side closed the link; no new data
};

/// The header at offset 0 of a shared-memory segment (data only; `segment`
/// in segment.hpp is the code). Side 0 is the creator, side 1 the peer that
/// attached. Ring 0 carries side 0 -> side 1, ring 1 the other direction.
///
/// ```
///  offset  size  field
///       0     8  magic            "MYCLSHM1"
///       8     4  layout_version   1
///      12     4  state            segment_state (atomic)
///      16     8  capacity         bytes of each ring's data area (power of two)
///      24     8  max_frame        largest frame either side sends
///      32    32  schema_digest    SHA-256 of the schema both sides use
///      64     8  owner_pid[2]     pid of side 0 / side 1 (0: none), atomic u32
///      72     8  (padding)
///      80    16  heartbeat[2]     CLOCK_MONOTONIC ns of each side's last beat
///      96   160  (reserved, zero)
///     256   192  ring_control 0   then capacity bytes of data
///  256+192+capacity  192  ring_control 1, then capacity bytes of data
/// ```
struct segment_header {
  uint64_t magic;
  uint32_t layout_version;
  std::atomic<uint32_t> state;
  uint64_t capacity;
  uint64_t max_frame;
  uint8_t schema_digest[32];
  std::atomic<uint32_t> owner_pid[2];
  uint64_t padding0;
  std::atomic<uint64_t> heartbeat[2];
  uint8_t reserved[160];
};

static_assert(sizeof(segment_header) == 256);
static_assert(offsetof(segment_header, capacity) == 16);
static_assert(offsetof(segment_header, schema_digest) == 32);
static_assert(offsetof(segment_header, owner_pid) == 64);
static_assert(offsetof(segment_header, heartbeat) == 80);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

/// Offset of ring `i`'s control block in a segment of `capacity`-byte rings.
constexpr size_t ring_offset(uint64_t capacity, int i) noexcept {
  return sizeof(segment_header)
         + static_cast<size_t>(i) * (sizeof(ring_control) + capacity);
}

/// Total size of a segment with two rings of `capacity` bytes.
constexpr size_t segment_size(uint64_t capacity) noexcept {
  return ring_offset(capacity, 2);
}

} // namespace mycelium::transports::shm
