// The byte-stream side of a link connection over a CAF scribe: reading,
// writing and flushing, and the send gate's accounting of frames in flight
// (see socket_transport.hpp).

#include "socket_transport.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "mycelium/transports/loop/io_loop.hpp"

namespace mycelium::transports::detail {

namespace {

/// Bytes requested per read; several frames arrive in one read.
constexpr size_t read_chunk = 64 * 1024;

} // namespace

socket_transport::socket_transport(caf::io::broker* self,
                                   std::shared_ptr<link_shared> sh,
                                   std::shared_ptr<send_gate> gate)
  : self_(self), sh_(std::move(sh)), gate_(std::move(gate)) {
  // nop
}

void socket_transport::open(caf::io::connection_handle hdl) {
  hdl_ = hdl;
  open_ = true;
  if (auto* l = io_loop::of(self_->system());
      l != nullptr && sh_->cfg.kind != link_kind::shm)
    idle_ = l->request_idle(sh_->cfg.idle()); // shm: its poller asks
  self_->configure_read(hdl, caf::io::receive_policy::at_most(read_chunk));
  self_->ack_writes(hdl, true);
  appended_ = written_ = 0;
  pending_.clear();
  out_.clear();
  last_tx_ = std::chrono::steady_clock::now();
}

void socket_transport::close() {
  if (!open_)
    return;
  open_ = false;
  idle_.reset();
  self_->close(hdl_); // graceful: a queued refusal still goes out
}

void socket_transport::stop() noexcept {
  idle_.reset();
}

void socket_transport::send(bool gated) {
  if (out_.empty() || !open_)
    return;
  self_->write(hdl_, out_.size(), out_.data());
  appended_ += out_.size();
  if (gated)
    pending_.push_back(appended_);
  sh_->bytes_sent.fetch_add(out_.size(), std::memory_order_relaxed);
  out_.clear();
  last_tx_ = std::chrono::steady_clock::now();
  self_->flush(hdl_);
}

bool socket_transport::read(const std::vector<char>& buf, link_protocol& proto,
                            link_listener& l) {
  mycelium::detail::bump(sh_->bytes_received, buf.size()); // loop thread only
  out_.clear();
  bool ok = proto.consume(reinterpret_cast<const uint8_t*>(buf.data()),
                          buf.size(), out_, l);
  send(false);
  return ok;
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
}

void socket_transport::drop_pending() {
  if (pending_.empty())
    return;
  sh_->dropped_link_down.fetch_add(pending_.size(), std::memory_order_relaxed);
  gate_->release(pending_.size());
  pending_.clear();
}

} // namespace mycelium::transports::detail
