// The byte-stream side of a link connection over a CAF scribe: reading,
// writing and flushing, written by the node's I/O loop itself where it can,
// and the send gate's accounting of frames in flight (see
// socket_transport.hpp).

#include "socket_transport.hpp"

#include <algorithm>
#include <cerrno>

#include <sys/socket.h>
#include <sys/types.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "mycelium/transports/loop/io_loop.hpp"

namespace mycelium::transports::detail {

namespace {

/// Bytes requested per read at most; several frames arrive in one read.
constexpr size_t read_chunk = 64 * 1024;

/// The scribe's smallest read (see `size_scribe_reads`): a few small frames.
constexpr size_t scribe_read_min = 2 * 1024;

/// Reads in a row that used under a quarter of the scribe's read size
/// before it halves.
constexpr uint32_t scribe_shrink_after = 16;

/// The socket behind a scribe of CAF's epoll backend (its handle is the
/// descriptor), or -1 if `hdl` is not a stream socket.
int socket_of(caf::io::connection_handle hdl) noexcept {
  auto fd = static_cast<int>(hdl.id());
  int type = 0;
  socklen_t len = sizeof(type);
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0
      || type != SOCK_STREAM)
    return -1;
  return fd;
}

} // namespace

socket_transport::socket_transport(caf::io::broker* self,
                                   std::shared_ptr<link_shared> sh,
                                   std::shared_ptr<send_gate> gate,
                                   reader polled)
  : self_(self), sh_(std::move(sh)), gate_(std::move(gate)),
    polled_(std::move(polled)), loop_(io_loop::of(self->system())) {
  // nop
}

socket_transport::~socket_transport() {
  stop();
}

void socket_transport::open(caf::io::connection_handle hdl) {
  hdl_ = hdl;
  open_ = true;
  fd_ = loop_ != nullptr ? socket_of(hdl) : -1;
  if (loop_ != nullptr && sh_->cfg.kind != link_kind::shm) { // shm: its poller asks
    auto idle = sh_->cfg.idle();
    if (fd_ >= 0 && idle.mode != wait_mode::block && polled_) {
      rd_buf_.resize(read_chunk);
      idle_ = loop_->add_poller(reader_poller_, idle);
    } else {
      idle_ = loop_->request_idle(idle);
    }
  }
  scribe_read_size_ = scribe_read_min;
  short_scribe_reads_ = 0;
  self_->configure_read(hdl, caf::io::receive_policy::at_most(scribe_read_size_));
  self_->ack_writes(hdl, true);
  appended_ = written_ = 0;
  stream_ended_ = false;
  epoll_watch_.reset();
  pending_.clear();
  out_.clear();
  held_.clear();
  held_ends_.clear();
  last_tx_ = std::chrono::steady_clock::now();
}

void socket_transport::close() {
  if (!open_)
    return;
  write_held();
  open_ = false;
  idle_.reset();
  epoll_watch_.reset();
  cancel_flush();
  self_->close(hdl_); // graceful: a queued refusal still goes out
}

void socket_transport::stop_polling() noexcept {
  // The idle request goes with the poller; the loop keeps its strategy
  // until the connection closes, which it is about to.
  idle_.reset();
}

void socket_transport::stop() noexcept {
  idle_.reset();
  epoll_watch_.reset();
  cancel_flush();
}

void socket_transport::update_watch() {
  bool want = open_ && loop_ != nullptr && (appended_ != written_ || stream_ended_);
  if (want && !epoll_watch_)
    epoll_watch_ = loop_->watch_sockets();
  else if (!want && epoll_watch_)
    epoll_watch_.reset();
}

void socket_transport::cancel_flush() noexcept {
  if (loop_ != nullptr && flush_asked_)
    loop_->cancel_flush(*this);
  flush_asked_ = false;
}

void socket_transport::send(bool gated) {
  if (out_.empty() || !open_)
    return;
  if (fd_ < 0) { // no loop of ours: the scribe writes
    sh_->bytes_sent.fetch_add(out_.size(), std::memory_order_relaxed);
    last_tx_ = std::chrono::steady_clock::now();
    size_t end = out_.size();
    to_scribe(out_.data(), out_.size(), gated ? &end : nullptr, gated ? 1 : 0);
    out_.clear();
    return;
  }
  held_.insert(held_.end(), out_.begin(), out_.end());
  note_held(out_.size(), gated);
  out_.clear();
}

void socket_transport::note_held(size_t bytes, bool gated) {
  sh_->bytes_sent.fetch_add(bytes, std::memory_order_relaxed);
  if (gated)
    held_ends_.push_back(held_.size());
  if (!flush_asked_) {
    flush_asked_ = true;
    loop_->flush_at_turn_end(*this);
  }
}

errc socket_transport::write_value(link_protocol& proto, uint32_t type_id,
                                  const void* value) {
  send(false); // frames queued before this one carry earlier sequence numbers
  if (fd_ < 0 || !open_) { // not on our loop: through `batch()` and the scribe
    auto e = proto.write_value(type_id, value, out_);
    if (e == errc::none)
      send(true);
    return e;
  }
  auto start = held_.size();
  auto e = proto.write_value(type_id, value, held_); // in place, no copy
  if (e != errc::none)
    return e;
  note_held(held_.size() - start, true);
  return errc::none;
}

void socket_transport::flush() {
  flush_asked_ = false; // the loop took us off its list
  write_held();
}

void socket_transport::write_held() {
  if (held_.empty())
    return;
  if (!open_) {
    drop_held();
    return;
  }
  last_tx_ = std::chrono::steady_clock::now(); // once per turn, not per frame
  size_t n = 0;
  if (appended_ == written_) { // the scribe holds nothing: no reordering
    auto r = ::send(fd_, held_.data(), held_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    // EAGAIN: the kernel's buffer is full. Other errors: the scribe's write
    // fails the same way and reports the closed connection as usual.
    if (r > 0) {
      n = static_cast<size_t>(r);
      mycelium::detail::bump(sh_->socket_writes); // loop thread only
    }
  }
  auto done = std::upper_bound(held_ends_.begin(), held_ends_.end(), n)
              - held_ends_.begin();
  if (done > 0)
    gate_->release(static_cast<size_t>(done));
  if (n < held_.size()) {
    for (auto i = static_cast<size_t>(done); i < held_ends_.size(); ++i)
      held_ends_[i] -= n;
    to_scribe(held_.data() + n, held_.size() - n, held_ends_.data() + done,
              held_ends_.size() - static_cast<size_t>(done));
  }
  held_.clear();
  held_ends_.clear();
}

void socket_transport::to_scribe(const uint8_t* data, size_t size,
                                 const size_t* ends, size_t n_ends) {
  self_->write(hdl_, size, data);
  for (size_t i = 0; i < n_ends; ++i)
    pending_.push_back(appended_ + ends[i]);
  appended_ += size;
  mycelium::detail::bump(sh_->scribe_writes); // loop thread only
  self_->flush(hdl_);
  update_watch();
}

bool socket_transport::read(const char* data, size_t size, link_protocol& proto,
                            link_listener& l) {
  mycelium::detail::bump(sh_->bytes_received, size); // loop thread only
  out_.clear();
  bool ok = proto.consume(reinterpret_cast<const uint8_t*>(data), size, out_, l);
  send(false);
  return ok;
}

bool socket_transport::read_from_scribe(const std::vector<char>& buf,
                                        link_protocol& proto, link_listener& l) {
  bool ok = read(buf.data(), buf.size(), proto, l);
  if (ok && open_)
    size_scribe_reads(buf.size());
  return ok;
}

void socket_transport::size_scribe_reads(size_t n) {
  auto next = scribe_read_size_;
  if (n >= scribe_read_size_) {
    next = std::min(read_chunk, scribe_read_size_ * 2);
    short_scribe_reads_ = 0;
  } else if (n < scribe_read_size_ / 4 && scribe_read_size_ > scribe_read_min) {
    if (++short_scribe_reads_ >= scribe_shrink_after) {
      next = scribe_read_size_ / 2;
      short_scribe_reads_ = 0;
    }
  } else {
    short_scribe_reads_ = 0;
  }
  if (next != scribe_read_size_) {
    scribe_read_size_ = next;
    // Takes effect for the scribe's next read (CAF sizes it after this
    // handler returns).
    self_->configure_read(hdl_, caf::io::receive_policy::at_most(next));
  }
}

void socket_transport::on_transferred(uint64_t n) {
  written_ += n;
  size_t done = 0;
  while (!pending_.empty() && pending_.front() <= written_) {
    pending_.pop_front();
    ++done;
  }
  if (done > 0)
    gate_->release(done);
  if (written_ == appended_)
    update_watch();
}

void socket_transport::drop_held() noexcept {
  if (!held_ends_.empty()) {
    sh_->dropped_link_down.fetch_add(held_ends_.size(), std::memory_order_relaxed);
    gate_->release(held_ends_.size());
  }
  held_.clear();
  held_ends_.clear();
}

void socket_transport::drop_pending() {
  drop_held();
  if (pending_.empty())
    return;
  sh_->dropped_link_down.fetch_add(pending_.size(), std::memory_order_relaxed);
  gate_->release(pending_.size());
  pending_.clear();
}

size_t socket_transport::read_poller::poll() {
  if (!t_.open_)
    return 0;
  auto r = ::recv(t_.fd_, t_.rd_buf_.data(), t_.rd_buf_.size(), MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0; // nothing yet
  if (r <= 0) { // end of stream or an error: the scribe reports it on epoll's word
    if (!t_.stream_ended_) {
      t_.stream_ended_ = true;
      t_.update_watch();
    }
    return 0;
  }
  mycelium::detail::bump(t_.sh_->polled_reads); // loop thread only
  t_.polled_(t_.rd_buf_.data(), static_cast<size_t>(r));
  return 1;
}

} // namespace mycelium::transports::detail
