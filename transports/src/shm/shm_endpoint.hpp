#pragma once

#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>
#include <caf/message.hpp>

#include "mycelium/transports/frame_reader.hpp"
#include "mycelium/transports/link_listener.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "mycelium/transports/loop/poller.hpp"
#include "shm_channel.hpp"

namespace mycelium::transports::shm::detail {

/// One connection's shared-memory data path: the segment (created by the
/// listening side, attached by the connecting side), the channel that
/// publishers write into, and the reader that the node's I/O loop polls
/// (a `poller`). Received frames are checked (header, sequence) and decoded
/// here.
///
/// Thread-safety: owned by one link broker; everything but the channel's
/// `push` runs on the I/O loop's thread.
class shm_endpoint final : public poller {
public:
  struct callbacks {
    /// Takes data, interest (carried in the ring, in order with the data)
    /// and undecodable frames, as checked by the link core's
    /// `frame_reader`. Must outlive the endpoint.
    link_listener* listener = nullptr;
    /// The ring is broken (corrupt header, sequence gap): reset the link.
    /// Called at most once, from inside `poll`: only post a message.
    std::function<void(errc code, const std::string& text)> on_fault;
    /// See shm_channel: overflow under `disconnect`, or a corrupt ring seen
    /// by a publisher. Any thread; only post a message.
    std::function<void(errc code)> on_trouble;
  };

  /// Listening side: creates a fresh segment (removing stale ones first).
  static caf::expected<std::unique_ptr<shm_endpoint>>
  create(io_loop& loop,
         std::shared_ptr<transports::detail::link_shared> sh, callbacks cbs);

  /// Connecting side: maps the segment the peer offered, checking its
  /// header and schema digest.
  static caf::expected<std::unique_ptr<shm_endpoint>>
  attach(io_loop& loop, std::shared_ptr<transports::detail::link_shared> sh,
         const std::string& name, callbacks cbs);

  ~shm_endpoint() override;

  /// The segment's name and this loop's doorbell, for `shm_attach`.
  wire::shm_attach offer() const;

  /// The peer answered `shm_attach`: the name can go from /dev/shm, and its
  /// doorbell is known.
  void peer_attached(const std::string& doorbell);

  /// Starts being polled by the I/O loop.
  void start();

  /// Delivers what is still in the ring (a peer that said goodbye or died
  /// may have left frames), stops polling and closes the channel.
  void finish();

  /// The port that `bus::subscribe_link` gets.
  std::shared_ptr<shm_channel> channel() const { return channel_; }

  /// Heartbeat into the segment header and the peer's liveness; returns a
  /// text when the peer's process is gone.
  std::string check_peer();

  /// True if the peer showed life since the last call: it wrote into our
  /// incoming ring, consumed from our outgoing ring, or beat the segment.
  /// A peer whose I/O loop is busy with our stream (and late with its
  /// heartbeats over the socket) is alive; a hung one moves none of them.
  /// Loop thread only.
  bool peer_progressed() noexcept;

  // -- poller --------------------------------------------------------------------
  size_t poll() override;
  bool arm() noexcept override;
  void disarm() noexcept override;

private:
  shm_endpoint(io_loop& loop,
               std::shared_ptr<transports::detail::link_shared> sh,
               segment seg, callbacks cbs);

  /// Takes up to `max_frames` frames; returns how many.
  size_t take(size_t max_frames);
  bool ready() const noexcept;

  io_loop& loop_;
  loop_registration registration_;
  std::shared_ptr<transports::detail::link_shared> sh_;
  callbacks cbs_;
  std::shared_ptr<shm_channel> channel_;
  ring_reader reader_;
  frame_reader frames_; ///< the link core's checks, for the incoming ring
  std::string peer_text_; ///< "shared-memory segment NAME", for errors
  bool failed_ = false;
  /// The peer's positions at the last `peer_progressed`: our incoming
  /// ring's head, our outgoing ring's tail, its heartbeat.
  uint64_t peer_marks_[3] = {0, 0, 0};
};

} // namespace mycelium::transports::shm::detail
