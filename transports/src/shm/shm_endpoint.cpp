#include "shm_endpoint.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include <unistd.h>

#include "mycelium/actors/log.hpp"

namespace mycelium::transports::shm::detail {

namespace {

/// Frames taken per ring per turn of the loop.
constexpr size_t batch = 256;

std::string fresh_name() {
  static std::atomic<uint32_t> counter{0};
  std::random_device rd;
  return "mycelium-" + std::to_string(::getpid()) + "-"
         + std::to_string(counter.fetch_add(1)) + "-" + std::to_string(rd() % 1000000);
}

} // namespace

shm_endpoint::shm_endpoint(io_loop& loop,
                           std::shared_ptr<transports::detail::link_shared> sh,
                           segment seg, callbacks cbs)
  : loop_(loop), sh_(std::move(sh)), cbs_(std::move(cbs)),
    frames_(&sh_->schema, sh_->cfg.max_payload),
    peer_text_("shared-memory segment " + seg.name()) {
  reader_ = seg.reader();
  channel_ = std::make_shared<shm_channel>(sh_, std::move(seg), cbs_.on_trouble);
}

shm_endpoint::~shm_endpoint() {
  registration_.reset();
  channel_->close();
  if (channel_->seg().side() == 0)
    channel_->seg().unlink(); // idempotent; the peer may never have attached
}

namespace {

/// The loop's doorbell must exist before a peer can be told its name.
caf::error check_doorbell(io_loop& loop) {
  if (!loop.doorbell_name().empty())
    return caf::none;
  return make_error(errc::io_failed,
                    std::string{"cannot create the doorbell socket of this I/O "
                                "loop (abstract Unix datagram socket): "}
                      + std::strerror(errno));
}

} // namespace

caf::expected<std::unique_ptr<shm_endpoint>>
shm_endpoint::create(io_loop& loop,
                     std::shared_ptr<transports::detail::link_shared> sh,
                     callbacks cbs) {
  if (auto err = check_doorbell(loop))
    return err;
  // A segment with our fresh name cannot exist, but retry once on a clash.
  for (int attempt = 0;; ++attempt) {
    auto seg = segment::create(fresh_name(), sh->cfg.ring_capacity, sh->schema.digest);
    if (seg) {
      auto* self = new shm_endpoint(loop, sh, std::move(*seg), std::move(cbs));
      return std::unique_ptr<shm_endpoint>{self};
    }
    if (attempt > 0 || seg.error().code() != static_cast<uint8_t>(errc::address_in_use))
      return seg.error();
  }
}

caf::expected<std::unique_ptr<shm_endpoint>>
shm_endpoint::attach(io_loop& loop,
                     std::shared_ptr<transports::detail::link_shared> sh,
                     const std::string& name, callbacks cbs) {
  if (auto err = check_doorbell(loop))
    return err;
  if (name.rfind("mycelium-", 0) != 0 || name.find('/') != std::string::npos)
    return make_error(errc::protocol_violation,
                      "the peer offered segment '" + name
                        + "', which is not a Mycelium segment name");
  auto seg = segment::attach(name, sh->schema.digest);
  if (!seg)
    return seg.error();
  if (seg->capacity() != sh->cfg.ring_capacity)
    log(log_level::info, sh->self.node + "/link:" + sh->cfg.name,
        "segment " + name + " has rings of " + std::to_string(seg->capacity())
          + " bytes (the peer's ring_capacity; ours is "
          + std::to_string(sh->cfg.ring_capacity) + ")");
  auto* self = new shm_endpoint(loop, sh, std::move(*seg), std::move(cbs));
  return std::unique_ptr<shm_endpoint>{self};
}

wire::shm_attach shm_endpoint::offer() const {
  return {channel_->seg().name(), loop_.doorbell_name()};
}

void shm_endpoint::peer_attached(const std::string& doorbell) {
  channel_->seg().unlink(); // both mapped it: nothing to leave behind
  channel_->set_peer_doorbell(doorbell);
}

void shm_endpoint::start() {
  if (!registration_)
    registration_ = loop_.add_poller(*this, sh_->cfg.idle());
}

void shm_endpoint::finish() {
  if (!failed_)
    while (take(batch) > 0) {
      // drain
    }
  registration_.reset();
  channel_->close();
}

std::string shm_endpoint::check_peer() {
  auto& seg = channel_->seg();
  seg.beat();
  auto pid = seg.header().owner_pid[1 - seg.side()].load(std::memory_order_acquire);
  if (pid != 0 && !seg.peer_alive())
    return "the peer's process " + std::to_string(pid) + " no longer exists";
  return {};
}

bool shm_endpoint::peer_progressed() noexcept {
  auto& seg = channel_->seg();
  uint64_t now[3] = {
    seg.incoming().head.load(std::memory_order_acquire),
    seg.outgoing().tail.load(std::memory_order_acquire),
    seg.header().heartbeat[1 - seg.side()].load(std::memory_order_relaxed),
  };
  bool moved = false;
  for (int i = 0; i < 3; ++i) {
    moved = moved || now[i] != peer_marks_[i];
    peer_marks_[i] = now[i];
  }
  return moved;
}

size_t shm_endpoint::poll() {
  return take(batch);
}

bool shm_endpoint::ready() const noexcept {
  return !failed_ && reader_.maybe_ready();
}

bool shm_endpoint::arm() noexcept {
  channel_->seg().incoming().consumer_sleeping.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst); // flag before the re-check
  return !ready();
}

void shm_endpoint::disarm() noexcept {
  channel_->seg().incoming().consumer_sleeping.store(0, std::memory_order_relaxed);
}

size_t shm_endpoint::take(size_t max_frames) {
  size_t taken = 0;
  auto fault = [this, &taken](errc code, const std::string& text) {
    failed_ = true;
    if (cbs_.on_fault)
      cbs_.on_fault(code, text);
    return taken;
  };
  std::string why;
  while (taken < max_frames && !failed_) {
    const uint8_t* data = nullptr;
    size_t n = 0;
    auto st = reader_.peek(data, n);
    if (st == ring_status::empty)
      break;
    if (st != ring_status::ok)
      return fault(errc::protocol_violation,
                   "corrupt record in " + peer_text_ + " after frame "
                     + std::to_string(frames_.last_sequence()));
    // One record holds one frame: the link core checks it like any other.
    wire::frame_header h;
    if (auto e = frames_.next(data, n, true, h, peer_text_, why); e != errc::none)
      return fault(e, why);
    if (!frame_reader::is_data_path(h))
      return fault(errc::protocol_violation,
                   "unexpected " + describe_frame(h) + " in " + peer_text_
                     + ": rings carry only data and interest frames");
    ++taken;
    mycelium::detail::bump(sh_->bytes_received, n); // loop thread only
    // Data is decoded straight from the ring into a value on the stack and
    // handed on during the call: no message, no allocation for loop services.
    auto e = frames_.dispatch(h, data + wire::frame_header::size, *cbs_.listener,
                              peer_text_, why);
    reader_.release(); // handled: the bytes may be reused
    if (e != errc::none)
      return fault(e, why);
  }
  return taken;
}

} // namespace mycelium::transports::shm::detail
