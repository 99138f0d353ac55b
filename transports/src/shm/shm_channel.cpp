#include "shm_channel.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>


#include "mycelium/actors/log.hpp"
#include "mycelium/detail/cpu_relax.hpp"

namespace mycelium::transports::shm::detail {

namespace {

/// What the bus hears of a message the channel took (sent, or dropped and
/// counted by the link) or not (refused by the overflow policy).
constexpr offer_result taken(bool yes) noexcept {
  return yes ? offer_result::delivered : offer_result::refused;
}

} // namespace

shm_channel::shm_channel(std::shared_ptr<transports::detail::link_shared> sh,
                         segment seg, std::function<void(errc)> trouble)
  : sh_(std::move(sh)), seg_(std::move(seg)), out_ctl_(&seg_.outgoing()),
    trouble_(std::move(trouble)), frames_(&sh_->schema, sh_->cfg.max_payload),
    overflow_(sh_->cfg.overflow,
              std::chrono::duration_cast<std::chrono::nanoseconds>(sh_->cfg.block_timeout),
              [this] {
                if (trouble_)
                  trouble_(errc::link_overflow);
              }) {
  writer_ = seg_.writer();
}

void shm_channel::set_peer_doorbell(const std::string& name) {
  std::lock_guard<mycelium::detail::spinlock> guard{mtx_};
  bell_.open(name);
  bell_.ring();
}

void shm_channel::close() {
  {
    std::lock_guard<mycelium::detail::spinlock> guard{mtx_};
    if (!closed_) {
      closed_ = true;
      sh_->dropped_link_down.fetch_add(writer_.unconsumed_frames(),
                                       std::memory_order_relaxed);
    }
  }
  sh_->retire(this); // nothing is sent after closed_
}

uint64_t shm_channel::backlog() const noexcept {
  std::lock_guard<mycelium::detail::spinlock> guard{mtx_};
  return closed_ ? 0 : writer_.unconsumed_frames();
}

void shm_channel::wake_peer() noexcept {
  // Only if the peer's loop sleeps (flag handshake, see io_loop).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (out_ctl_->consumer_sleeping.load(std::memory_order_relaxed) != 0)
    bell_.ring();
}

void shm_channel::sync_interest(const caf::actor_control_block* exclude) {
  auto& sh = *sh_;
  std::lock_guard<std::mutex> serial{interest_mtx_};
  // Computed under `interest_mtx_`: a later call never writes an older view.
  auto want = sh.bus->interest(exclude, !sh.cfg.relay);
  std::set<uint32_t> now;
  for (auto id : want)
    if (sh.schema.find(id) != nullptr)
      now.insert(id);
  std::vector<std::pair<uint32_t, bool>> changes;
  for (auto id : now)
    if (advertised_.count(id) == 0)
      changes.emplace_back(id, true);
  for (auto id : advertised_)
    if (now.count(id) == 0)
      changes.emplace_back(id, false);
  advertised_.swap(now);
  if (changes.empty())
    return;
  std::lock_guard<mycelium::detail::spinlock> guard{mtx_};
  if (closed_)
    return;
  // A change for a type whose previous change is still queued cancels it
  // (nothing lies between queued frames, data writes the queue first), so
  // the queue holds at most one entry per type, however long the ring is
  // full.
  for (auto& c : changes) {
    auto i = std::find_if(interest_queue_.begin(), interest_queue_.end(),
                          [&](auto& q) { return q.first == c.first; });
    if (i != interest_queue_.end())
      interest_queue_.erase(i);
    else
      interest_queue_.push_back(c);
  }
  flush_interest_locked();
}

bool shm_channel::flush_interest() {
  std::lock_guard<mycelium::detail::spinlock> guard{mtx_};
  return closed_ || flush_interest_locked() == ring_status::ok;
}

ring_status shm_channel::flush_interest_locked() {
  bool wrote = false;
  auto st = ring_status::ok;
  while (!interest_queue_.empty()) {
    auto [id, add] = interest_queue_.front();
    interest_frame_.clear();
    frames_.write_interest(id, add, interest_frame_);
    st = writer_.write(interest_frame_.data(), interest_frame_.size());
    if (st != ring_status::ok) {
      frames_.unwrite(); // not sent: the next frame takes its number
      break;
    }
    interest_queue_.pop_front();
    wrote = true;
  }
  if (wrote)
    wake_peer();
  return st;
}

offer_result shm_channel::offer(uint32_t type_id, const void* value) noexcept {
  auto& sh = *sh_;
  constexpr size_t hdr = wire::frame_header::size;
  try {
    std::unique_lock<mycelium::detail::spinlock> guard{mtx_};
    // Fast path: claim the ring's free run and encode the frame in place.
    uint8_t* dst = nullptr;
    size_t granted = 0;
    // Interest queued by a full ring goes first (in order with the data).
    if (!closed_ && (interest_queue_.empty() || flush_interest_locked() == ring_status::ok)
        && writer_.claim(hdr, hdr + sh.cfg.max_payload, dst, granted) == ring_status::ok) {
      size_t n = 0;
      auto e = frames_.encode_payload_into(type_id, value, dst + hdr, granted - hdr, n);
      if (e == errc::none) {
        frames_.seal(type_id, static_cast<uint32_t>(n)).write(dst);
        writer_.commit(hdr + n);
        mycelium::detail::bump(frames_sent_); // under mtx_: one writer
        mycelium::detail::bump(bytes_sent_, hdr + n);
        wake_peer();
        return offer_result::delivered;
      }
      if (e == errc::unknown_type || e == errc::frame_too_large) {
        guard.unlock();
        return taken(refuse(type_id, e, n));
      }
      // truncated: more than the run left before the ring wraps or fills.
    }
  } catch (...) { // out of memory in the encoder: counted as unencodable
    sh.bad_frames.fetch_add(1, std::memory_order_relaxed);
    return offer_result::delivered;
  }
  // Slow path: encode aside, then wait for room by the overflow policy.
  thread_local std::vector<uint8_t> payload;
  auto e = errc::unknown_type;
  try {
    e = frames_.encode_payload(type_id, value, payload); // const: no lock needed
  } catch (...) { // out of memory: counted like an unencodable message
  }
  if (e != errc::none)
    return taken(refuse(type_id, e, payload.size()));
  std::unique_lock<mycelium::detail::spinlock> guard{mtx_};
  return taken(write_locked(guard, type_id, payload));
}

bool shm_channel::refuse(uint32_t type_id, errc e, size_t payload_size) noexcept {
  auto& sh = *sh_;
  if (e != errc::frame_too_large) {
    sh.bad_frames.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  try {
    auto* t = sh.schema.find(type_id);
    auto text = "a '" + (t ? t->name : std::string{"?"}) + "' message of "
                + std::to_string(payload_size)
                + " payload bytes is larger than max_payload "
                + std::to_string(sh.cfg.max_payload)
                + ": not sent (raise max_payload and ring_capacity on both sides)";
    sh.set_error(text); // before the counter: whoever sees it finds the text
    if (sh.frames_too_large.fetch_add(1, std::memory_order_relaxed) == 0)
      log(log_level::error, sh.self.node + "/link:" + sh.cfg.name, text);
  } catch (...) { // out of memory for the text: still counted
    sh.frames_too_large.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

bool shm_channel::write_locked(std::unique_lock<mycelium::detail::spinlock>& guard,
                               uint32_t type_id,
                               const std::vector<uint8_t>& payload) {
  auto& sh = *sh_;
  auto n = wire::frame_header::size + payload.size();
  std::chrono::steady_clock::time_point deadline{};
  for (uint32_t attempt = 0;; ++attempt) {
    if (closed_) {
      sh.dropped_link_down.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    uint8_t* dst = nullptr;
    auto st = flush_interest_locked(); // queued interest goes first
    if (st == ring_status::ok)
      st = writer_.reserve(n, dst);
    if (st == ring_status::ok) {
      frames_.seal(type_id, static_cast<uint32_t>(payload.size())).write(dst);
      if (!payload.empty())
        std::memcpy(dst + wire::frame_header::size, payload.data(), payload.size());
      writer_.commit();
      mycelium::detail::bump(frames_sent_); // under mtx_: one writer
      mycelium::detail::bump(bytes_sent_, n);
      wake_peer();
      return true;
    }
    if (st != ring_status::back_pressured) { // corrupt (too_large: validated)
      closed_ = true;
      sh.dropped_link_down.fetch_add(1, std::memory_order_relaxed);
      if (trouble_)
        trouble_(errc::protocol_violation);
      return true;
    }
    if (attempt == 0) {
      // Full: the link's overflow policy decides, counted in one place.
      if (overflow_.on_full(send_gate::blocking_allowed(), deadline)
          == overflow_guard::verdict::refuse)
        return false;
    } else if (std::chrono::steady_clock::now() >= deadline) {
      overflow_.timed_out();
      return false;
    }
    // Wait for the peer's I/O loop to consume; let other publishers in.
    guard.unlock();
    if (attempt < 64)
      mycelium::detail::cpu_relax();
    else
      std::this_thread::yield();
    guard.lock();
  }
}

} // namespace mycelium::transports::shm::detail
