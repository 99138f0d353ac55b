// The byte-stream side of a link connection: moving bytes over the Unix or
// TCP socket of a CAF scribe (reading, writing, flushing) and the send
// gate's accounting of data frames still on their way to the kernel. Every
// link has one: a shared-memory link runs its handshake and control frames
// over a Unix socket too.

#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include <caf/io/broker.hpp>
#include <caf/io/connection_handle.hpp>

#include "link_shared.hpp"
#include "mycelium/transports/link_listener.hpp"
#include "mycelium/transports/link_protocol.hpp"
#include "mycelium/transports/loop/flusher.hpp"
#include "mycelium/transports/loop/poller.hpp"

namespace mycelium::transports {
class io_loop;
} // namespace mycelium::transports

namespace mycelium::transports::detail {

/// One connection's socket, opened by a scribe of the connection's broker.
/// Frames are appended to `batch()` (by the link core) and `send` queues
/// them; a gated send (data frames from the bus) holds one slot of the
/// connection's send gate until the kernel took its last byte.
///
/// On the node's `io_loop` the socket is driven by the loop itself, without
/// the scribe's round trip through epoll (register write interest, wait for
/// writability, write, deregister: three system calls per batch):
///  - writing: what a turn queued is written at the turn's end with one
///    non-blocking `send()` (the transport is a `flusher`) while the scribe
///    holds nothing; a rest the kernel did not take goes to the scribe, and
///    so does everything after it until the scribe has written it all, so
///    the bytes keep their order (meanwhile the loop polls epoll on every
///    turn, `io_loop::watch_sockets`, since the scribe writes on epoll's
///    word);
///  - reading (links that busy-poll or spin): a poller reads with
///    `recv(MSG_DONTWAIT)` on every turn and hands the bytes to the reader;
///    end of stream and errors are left to the scribe, whose epoll event
///    reports them as before (the poller has the loop poll epoll on every
///    turn from then on). A sleeping loop is still woken by epoll for the
///    socket (the scribe keeps its read interest).
/// Elsewhere (CAF's default backend) every send goes through the scribe.
///
/// Thread-safety: owned by one connection; touched only by its broker and
/// the loop's turn (the same thread).
class socket_transport final : private flusher {
public:
  /// Called with bytes the poller read, outside the broker's own message
  /// handling; the reader must not end the broker from inside (post it).
  using reader = std::function<void(const char* data, size_t size)>;

  socket_transport(caf::io::broker* self, std::shared_ptr<link_shared> sh,
                   std::shared_ptr<send_gate> gate, reader polled);
  ~socket_transport() override;

  /// Takes over the scribe `hdl` of a new connection: reads in chunks,
  /// acknowledges writes, starts the send accounting afresh and (socket
  /// kinds) has the loop idle by the link's idle strategy.
  void open(caf::io::connection_handle hdl);

  /// Writes what is queued, then closes the scribe gracefully (a queued
  /// refusal or goodbye still goes out). Idempotent.
  void close();

  /// Stops reading from the loop's poller (the connection is about to be
  /// closed from the broker).
  void stop_polling() noexcept;

  /// The broker exits: releases the loop's idle request and poller.
  void stop() noexcept;

  bool is_open() const noexcept { return open_; }

  /// The buffer being filled (e.g. by listener callbacks while `read` runs).
  std::vector<uint8_t>& batch() noexcept { return out_; }

  /// `batch()`, emptied first.
  std::vector<uint8_t>& new_batch() noexcept {
    out_.clear();
    return out_;
  }

  /// Queues `batch()` for the socket (written at the end of the loop's
  /// turn, or handed to the scribe at once without a loop); `gated` frames
  /// hold a send-queue slot until the kernel took their last byte. Nothing
  /// happens on a closed socket.
  void send(bool gated);

  /// Appends the data frame of `*value` (a generated struct of `type_id`)
  /// as a gated send, after whatever `batch()` holds (the protocol's
  /// sequence numbers stay in order). Returns the errors of
  /// `link_protocol::write_value`; nothing is queued then.
  [[nodiscard]] errc write_value(link_protocol& proto, uint32_t type_id,
                                 const void* value);

  /// Writes what `send` queued now (a goodbye before the broker quits).
  void write_held();

  /// Feeds received bytes to `proto` (which reports to `l`) and sends what
  /// it answered. Returns false once the connection must close.
  bool read(const char* data, size_t size, link_protocol& proto,
            link_listener& l);

  /// `read` for the bytes of one read of the scribe (a `new_data_msg`),
  /// which also sizes the scribe's next read (`size_scribe_reads`).
  bool read_from_scribe(const std::vector<char>& buf, link_protocol& proto,
                        link_listener& l);

  /// The scribe wrote `n` more bytes: frees the gate slots of frames sent.
  void on_transferred(uint64_t n);

  /// The connection is lost: gated frames not yet handed to the kernel are
  /// lost with it, counted as `dropped_link_down`, and their slots freed.
  void drop_pending();

  /// When bytes last went towards the socket (for heartbeats).
  std::chrono::steady_clock::time_point last_tx() const noexcept {
    return last_tx_;
  }

private:
  /// Reads the socket on every turn of the loop (see the class comment).
  class read_poller final : public poller {
  public:
    explicit read_poller(socket_transport& t) : t_(t) {}
    size_t poll() override;
    bool arm() noexcept override { return true; } // epoll wakes the loop
    void disarm() noexcept override {}

  private:
    socket_transport& t_;
  };

  /// Hands `size` bytes at `data` to the scribe, whose gated frames end at
  /// `ends` (offsets relative to `data`).
  void to_scribe(const uint8_t* data, size_t size, const size_t* ends,
                 size_t n_ends);

  void drop_held() noexcept;

  /// `bytes` more at the end of `held_` (a frame ending there if `gated`):
  /// counts them and asks for the end of the loop's turn.
  void note_held(size_t bytes, bool gated);

  /// Holds or drops `epoll_watch_` as the scribe's bytes and the poller's
  /// findings require.
  void update_watch();

  /// The loop's turn ends (flusher): `write_held`.
  void flush() override;

  /// Takes us off the loop's list of flushers (before we close or die).
  void cancel_flush() noexcept;

  /// After a read of `n` bytes by the scribe: CAF's stream value-initialises
  /// its read buffer back to the size we asked for after every read (one
  /// memset of the whole buffer per read; 64 KiB for a 40-byte ping cost
  /// microseconds). So the size asked follows the reads: it doubles when a
  /// read filled it, up to `read_chunk`, and halves after a run of reads
  /// that used less than a quarter of it, down to `scribe_read_min`.
  void size_scribe_reads(size_t n);

  caf::io::broker* self_;
  std::shared_ptr<link_shared> sh_;
  std::shared_ptr<send_gate> gate_;
  reader polled_;
  io_loop* loop_; ///< null: CAF's default backend, the scribe does it all
  caf::io::connection_handle hdl_;
  int fd_ = -1;   ///< the scribe's socket, written directly by the loop
  bool open_ = false;
  bool flush_asked_ = false;
  std::vector<uint8_t> out_;
  std::vector<uint8_t> held_;     ///< queued this turn, not yet written
  std::vector<size_t> held_ends_; ///< end offsets in `held_` of gated frames
  uint64_t appended_ = 0; ///< bytes handed to the scribe
  uint64_t written_ = 0;  ///< bytes the scribe wrote
  std::deque<uint64_t> pending_; ///< scribe end offsets of gated frames in flight
  std::chrono::steady_clock::time_point last_tx_;
  loop_registration idle_; ///< socket kinds: the loop idles by our `wait`
  loop_registration epoll_watch_; ///< epoll on every turn (see update_watch)
  bool stream_ended_ = false;     ///< the poller read an end or an error
  read_poller reader_poller_{*this};
  std::vector<char> rd_buf_; ///< the poller's read buffer
  size_t scribe_read_size_ = 0; ///< what the scribe was last asked to read
  uint32_t short_scribe_reads_ = 0; ///< reads in a row under a quarter of it
};

} // namespace mycelium::transports::detail
