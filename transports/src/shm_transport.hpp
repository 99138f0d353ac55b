// The shared-memory data path of a link connection: the segment offer and
// attach exchanged over the control socket (`shm_attach` frames), the
// endpoint whose rings carry the data frames, our interest written into the
// outgoing ring in order with the data, and the ring faults reported back to
// the connection's broker.

#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <caf/io/broker.hpp>

#include "link_shared.hpp"
#include "mycelium/transports/link_listener.hpp"
#include "shm/shm_endpoint.hpp"

namespace mycelium::transports::detail {

/// One shared-memory connection's data path beside its control socket. The
/// listening side `create`s the segment once the hello passed and offers
/// it; the connecting side `attach`es to the offer and answers; the
/// listening side takes the answer (`on_answer`). From then on publishers
/// write into `channel()` and the node's I/O loop polls the incoming ring,
/// reporting frames to the connection's listener.
///
/// Ring faults and publisher-side trouble are posted to the broker
/// (`ring_fault_atom` with the connection's epoch, `overflow_atom`).
///
/// Thread-safety: owned by one connection; touched only by its broker
/// (publishers use the channel, see shm_channel).
class shm_transport {
public:
  shm_transport(caf::io::broker* self, std::shared_ptr<link_shared> sh);

  /// Whether a segment is mapped (created or attached).
  bool attached() const noexcept { return ep_ != nullptr; }

  /// Listening side: creates a fresh segment and starts polling it; frames
  /// go to `l`, faults name `epoch`. Returns a code and `why` on failure.
  errc create(link_listener& l, uint64_t epoch, std::string& why);

  /// Connecting side: the peer offered `x`; maps it, checks it and starts
  /// polling. Returns a code and `why` to reset the connection with.
  errc attach(const wire::shm_attach& x, const std::string& peer,
              link_listener& l, uint64_t epoch, std::string& why);

  /// Listening side: the peer answered `x` (it mapped our segment). Returns
  /// a code and `why` to reset the connection with.
  errc on_answer(const wire::shm_attach& x, const std::string& peer,
                 std::string& why);

  /// Our segment name and doorbell, for the `shm_attach` frame. Requires
  /// `attached()`.
  wire::shm_attach offer() const { return ep_->offer(); }

  /// The port that the bus's link subscriptions get. Requires `attached()`.
  std::shared_ptr<shm::detail::shm_channel> channel() const {
    return ep_->channel();
  }

  /// Writes changes of the local bus's interest into the ring, in order
  /// with the data (over the socket it could overtake data sent after it,
  /// and the peer would answer before it knew we listen); see
  /// shm_channel::sync_interest. Before `attached()` nothing: the
  /// connecting side advertises once it attached.
  void advertise_interest();

  /// Writes interest that a full ring held back (on every tick).
  void retry_interest();

  /// The connection's current channel, for threads outside the broker:
  /// the bus watcher writes an interest change from the subscriber's own
  /// thread through it, before that thread can publish anything after it.
  /// Thread-safety: any thread.
  class current_channel {
  public:
    void set(const std::shared_ptr<shm::detail::shm_channel>& ch);
    /// The live channel, or null between connections.
    std::shared_ptr<shm::detail::shm_channel> get() const;

  private:
    mutable std::mutex mtx_;
    std::weak_ptr<shm::detail::shm_channel> ch_;
  };

  /// Shared with the bus watcher (see `current_channel`).
  const std::shared_ptr<current_channel>& current() const noexcept {
    return current_;
  }

  /// Heartbeat into the segment and the peer's liveness: a text when the
  /// peer's process is gone, empty otherwise (and when not attached).
  std::string check_peer();
  /// Whether the peer showed life in the rings or segment since the last
  /// call (see shm_endpoint::peer_progressed); false when not attached.
  bool peer_progressed() noexcept { return ep_ && ep_->peer_progressed(); }

  /// The connection closes: delivers the frames the peer wrote before it
  /// left (they still count) and stops polling.
  void finish();

  /// Closes the endpoint (its channel retires its counters into the link's)
  /// and forgets what was advertised.
  void drop();

private:
  /// Starts polling a fresh endpoint; its outgoing ring counts in the
  /// link's `queued`.
  void adopt(std::unique_ptr<shm::detail::shm_endpoint> ep);

  /// Where the endpoint reports frames (`l`) and faults (posted to the
  /// broker, naming `epoch`).
  shm::detail::shm_endpoint::callbacks endpoint_callbacks(link_listener& l,
                                                          uint64_t epoch);

  io_loop* loop() const;

  caf::io::broker* self_;
  std::shared_ptr<link_shared> sh_;
  std::unique_ptr<shm::detail::shm_endpoint> ep_; ///< once attached
  std::shared_ptr<current_channel> current_ = std::make_shared<current_channel>();
};

} // namespace mycelium::transports::detail
