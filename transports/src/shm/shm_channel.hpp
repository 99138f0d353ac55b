#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include <caf/fwd.hpp>

#include "../link_shared.hpp"
#include "../loop/doorbell.hpp"
#include "mycelium/bus/port.hpp"
#include "mycelium/detail/spinlock.hpp"
#include "mycelium/transports/frame_writer.hpp"
#include "mycelium/transports/shm/segment.hpp"

namespace mycelium::transports::shm::detail {

/// The sending half of a shared-memory link: publishers write their frames
/// straight into the outgoing ring from their own thread (no mailbox, no
/// I/O-thread hop), under a mutex that makes the ring's single producer.
/// Applies the link's overflow policy when the ring is full and rings the
/// peer's doorbell when its I/O loop sleeps. Also owns the mapped segment,
/// so the mapping lives as long as any routing snapshot can still offer.
/// It is the link's port on the bus.
///
/// Our interest travels in the same ring, in order with the data: a
/// subscriber's thread writes it (`sync_interest`, from the bus watcher)
/// before its next publish can, so the peer always knows we listen before
/// it sees a message we sent after subscribing (a reply to it is not
/// dropped as unwanted).
///
/// Thread-safety: `offer`, `sync_interest` and `flush_interest` from any
/// thread; the rest from the link's broker.
class shm_channel final : public port,
                          public transports::detail::channel_source {
public:
  /// `trouble` runs (on the publisher's thread) when the link must be reset:
  /// `link_overflow` under policy `disconnect`, `protocol_violation` for a
  /// corrupt ring. It should only post a message to the link's broker.
  shm_channel(std::shared_ptr<transports::detail::link_shared> sh, segment seg,
              std::function<void(errc)> trouble);

  /// Writes the frame into the ring on the publisher's thread: `delivered`,
  /// or `refused` by the overflow policy. A message dropped for another
  /// reason (link down, too large, unencodable) is counted by the link and
  /// also answers `delivered`.
  offer_result offer(uint32_t type_id, const void* value) noexcept override;

  /// Brings the interest written into the ring up to date with the local
  /// bus (its subscriptions other than `exclude`'s, the link's own broker;
  /// without relaying, also other than other links'). Frames that do not
  /// fit a full ring stay queued and go out before the next data frame (or
  /// on `flush_interest`), so order holds. Calls are serialised: the last
  /// one sees the bus as it is. Never waits for the peer. Called from the
  /// bus watcher on the thread that (un)subscribed, and by the broker.
  void sync_interest(const caf::actor_control_block* exclude);

  /// Writes interest frames still queued by a full ring. Returns whether
  /// none is left (the link's tick calls it).
  bool flush_interest();

  /// Lets producers wake the peer's I/O loop from now on, and rings once
  /// (frames may have been written before the peer's doorbell was known).
  void set_peer_doorbell(const std::string& name);

  /// Refuses further offers (they count as `dropped_link_down`), and counts
  /// the frames the peer has not consumed yet as `dropped_link_down` too (an
  /// upper bound: a live peer may still read some of them).
  void close();

  segment& seg() noexcept { return seg_; }

  /// Frames in the outgoing ring that the peer has not taken yet (0 once
  /// closed: those were counted as `dropped_link_down`).
  uint64_t backlog() const noexcept override;
  uint64_t frames_sent() const noexcept override {
    return frames_sent_.load(std::memory_order_relaxed);
  }
  uint64_t bytes_sent() const noexcept override {
    return bytes_sent_.load(std::memory_order_relaxed);
  }
  const overflow_guard& overflow() const noexcept override { return overflow_; }

private:
  /// After a commit: rings the peer's doorbell if its loop sleeps. With
  /// `mtx_` held.
  void wake_peer() noexcept;

  /// Counts a message that cannot be sent (`unknown_type`: not of the
  /// schema; `frame_too_large`: over max_payload, with an error text).
  /// Returns true: refused by content, not by the overflow policy.
  bool refuse(uint32_t type_id, errc e, size_t payload_size) noexcept;

  /// Writes queued interest frames: `ok` when none is left, else the ring's
  /// answer to the first that did not fit. With `mtx_` held.
  ring_status flush_interest_locked();

  /// Writes one encoded payload as a frame; called with `mtx_` held.
  bool write_locked(std::unique_lock<mycelium::detail::spinlock>& guard, uint32_t type_id,
                    const std::vector<uint8_t>& payload);

  std::shared_ptr<transports::detail::link_shared> sh_;
  segment seg_;
  ring_control* out_ctl_; ///< seg_.outgoing(), looked up once
  std::function<void(errc)> trouble_;
  /// Makes the ring's single producer; held for one frame write.
  mutable mycelium::detail::spinlock mtx_;
  ring_writer writer_;
  frame_writer frames_; ///< the link core's frame layout and numbering

  bool closed_ = false;
  /// Interest frames not yet in the ring (add or remove), oldest first, at
  /// most one per type; under `mtx_`. Checked before every data frame.
  std::deque<std::pair<uint32_t, bool>> interest_queue_;
  std::vector<uint8_t> interest_frame_; ///< under `mtx_`, reused
  /// Serialises `sync_interest`; guards `advertised_`.
  std::mutex interest_mtx_;
  /// Interest written or queued, as last computed.
  std::set<uint32_t> advertised_;
  /// Written under `mtx_` only (one writer at a time), read by anyone.
  std::atomic<uint64_t> frames_sent_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  transports::detail::doorbell_sender bell_;
  /// The link's overflow policy for this ring, with its counters.
  overflow_guard overflow_;
};

} // namespace mycelium::transports::shm::detail
