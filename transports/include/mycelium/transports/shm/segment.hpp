#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/interprocess/mapped_region.hpp>
#include <caf/expected.hpp>

#include "mycelium/transports/shm/segment_layout.hpp"
#include "mycelium/transports/shm/spsc_ring.hpp"
#include "mycelium/wire/handshake.hpp"

namespace mycelium::transports::shm {

/// A mapped shared-memory segment holding two rings (one per direction)
/// under /dev/shm, created owner-only (0600), mapped with
/// Boost.Interprocess (`shared_memory_object`, `mapped_region`). Move-only;
/// unmaps on destruction. Links remove the name with `unlink()` as soon as both sides
/// mapped it (either side may), so a crash leaves nothing behind; the
/// creator (side 0) also removes it on destruction.
///
/// Thread-safety: the header's atomics may be used from any thread; each
/// ring end belongs to one thread (see spsc_ring.hpp).
class segment {
public:
  /// Creates `/dev/shm/<name>` (fails with `address_in_use` if it exists)
  /// for two rings of `capacity` bytes (a power of two) and state `ready`.
  static caf::expected<segment> create(const std::string& name, uint64_t capacity,
                                       const wire::digest256& schema_digest);

  /// Maps an existing segment as side 1 after checking magic, layout
  /// version, size and schema digest; errors name the segment and both
  /// values.
  static caf::expected<segment> attach(const std::string& name,
                                       const wire::digest256& schema_digest);

  segment() = default;
  segment(segment&& other) noexcept;
  segment& operator=(segment&& other) noexcept;
  segment(const segment&) = delete;
  segment& operator=(const segment&) = delete;
  ~segment();

  const std::string& name() const noexcept { return name_; }
  int side() const noexcept { return side_; }
  segment_header& header() noexcept { return *hdr_; }
  uint64_t capacity() const noexcept { return hdr_->capacity; }

  /// The writer for this side's outgoing ring, the reader for its incoming.
  ring_writer writer();
  ring_reader reader();
  ring_control& outgoing() noexcept;
  ring_control& incoming() noexcept;

  /// Records this side's heartbeat (CLOCK_MONOTONIC now).
  void beat() noexcept;

  /// Nanoseconds since the other side's last heartbeat (0 if it never beat).
  uint64_t peer_silence_ns() const noexcept;

  /// Whether the other side's process exists (pid liveness).
  bool peer_alive() const noexcept;

  /// Removes the name from /dev/shm (the mapping stays valid). Either side;
  /// idempotent.
  void unlink() noexcept;

private:
  /// Records this process as `side` (pid, first heartbeat), moves the state
  /// to `next` (release: the header is complete) and wraps the mapping.
  static segment take_side(const std::string& name,
                           boost::interprocess::mapped_region region, int side,
                           segment_state next);

  std::string name_;
  int side_ = 0;
  /// The whole segment, mapped read-write and shared; unmapped when the
  /// segment (or the region moved out of it) is destroyed.
  boost::interprocess::mapped_region region_;
  segment_header* hdr_ = nullptr; ///< the start of `region_`
  bool unlinked_ = false;
};

/// One segment found under /dev/shm by `list_segments`.
struct segment_info {
  std::string name;
  bool valid = false;      ///< magic and layout version match
  uint32_t state = 0;
  uint32_t owner_pid[2] = {0, 0};
  bool stale = false;      ///< no owner process is alive any more
  uint64_t size = 0;
  std::string problem;     ///< why it is not valid, if so
};

/// Lists the Mycelium segments (names starting with `prefix`) in /dev/shm.
std::vector<segment_info> list_segments(const std::string& prefix = "mycelium-");

/// Removes every stale segment (no live owner, or unreadable and older than
/// a minute); returns the names removed.
std::vector<std::string> remove_stale_segments(const std::string& prefix = "mycelium-");

/// CLOCK_MONOTONIC in nanoseconds (the same clock in every process).
uint64_t monotonic_ns() noexcept;

/// Whether process `pid` exists (kill(pid, 0) does not say ESRCH).
bool process_alive(uint32_t pid) noexcept;

} // namespace mycelium::transports::shm
