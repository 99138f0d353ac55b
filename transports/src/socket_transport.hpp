// The byte-stream side of a link connection: moving bytes over the CAF
// scribe of a Unix or TCP socket (reading, writing, flushing) and the send
// gate's accounting of data frames still on their way to the kernel. Every
// link has one: a shared-memory link runs its handshake and control frames
// over a Unix socket too.

#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <caf/io/broker.hpp>
#include <caf/io/connection_handle.hpp>

#include "link_shared.hpp"
#include "mycelium/transports/link_listener.hpp"
#include "mycelium/transports/link_protocol.hpp"
#include "mycelium/transports/loop/poller.hpp"

namespace mycelium::transports::detail {

/// One connection's socket: a scribe of the connection's broker. Frames
/// are appended to `batch()` (by the link core) and handed to the scribe in
/// one write by `send`. A gated send (data frames from the bus) holds one
/// slot of the connection's send gate until the kernel took its last byte.
///
/// Thread-safety: owned by one connection; touched only by its broker.
class socket_transport {
public:
  socket_transport(caf::io::broker* self, std::shared_ptr<link_shared> sh,
                   std::shared_ptr<send_gate> gate);

  /// Takes over the scribe `hdl` of a new connection: reads in chunks,
  /// acknowledges writes, starts the send accounting afresh and (socket
  /// kinds) has the loop idle by the link's idle strategy.
  void open(caf::io::connection_handle hdl);

  /// Closes the scribe gracefully (a queued refusal or goodbye still goes
  /// out). Idempotent.
  void close();

  /// The broker exits: releases the loop's idle request.
  void stop() noexcept;

  bool is_open() const noexcept { return open_; }

  /// The buffer being filled (e.g. by listener callbacks while `read` runs).
  std::vector<uint8_t>& batch() noexcept { return out_; }

  /// `batch()`, emptied first.
  std::vector<uint8_t>& new_batch() noexcept {
    out_.clear();
    return out_;
  }

  /// Hands `batch()` to the scribe and flushes; `gated` frames hold a
  /// send-queue slot until `on_transferred` saw their last byte. Nothing
  /// happens on a closed socket.
  void send(bool gated);

  /// Feeds received bytes to `proto` (which reports to `l`) and sends what
  /// it answered. Returns false once the connection must close.
  bool read(const std::vector<char>& buf, link_protocol& proto,
            link_listener& l);

  /// The kernel took `n` more bytes: frees the gate slots of frames sent.
  void on_transferred(uint64_t n);

  /// The connection is lost: gated frames not yet handed to the kernel are
  /// lost with it, counted as `dropped_link_down`, and their slots freed.
  void drop_pending();

  /// When `send` last wrote (for heartbeats).
  std::chrono::steady_clock::time_point last_tx() const noexcept {
    return last_tx_;
  }

private:
  caf::io::broker* self_;
  std::shared_ptr<link_shared> sh_;
  std::shared_ptr<send_gate> gate_;
  caf::io::connection_handle hdl_;
  bool open_ = false;
  std::vector<uint8_t> out_;
  uint64_t appended_ = 0;
  uint64_t written_ = 0;
  std::deque<uint64_t> pending_; ///< end offsets of gated frames in flight
  std::chrono::steady_clock::time_point last_tx_;
  loop_registration idle_; ///< socket kinds: the loop idles by our `wait`
};

} // namespace mycelium::transports::detail
