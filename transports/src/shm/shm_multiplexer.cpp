#include "mycelium/transports/shm/shm_multiplexer.hpp"

#include <algorithm>
#include <atomic>

#include <immintrin.h>
#include <sched.h>

#include <caf/io/middleman.hpp>

#include "doorbell.hpp"
#include "ring_poller.hpp"

namespace mycelium::transports::shm {

namespace detail {

ring_poller::~ring_poller() = default;

} // namespace detail

namespace {

/// Turns of the loop between non-blocking socket polls while rings are
/// busy (an epoll_wait costs about as much as a ring round trip).
constexpr uint32_t socket_poll_interval = 64;

} // namespace

shm_multiplexer::shm_multiplexer(caf::actor_system* sys)
  : default_multiplexer(sys) {
}

shm_multiplexer::~shm_multiplexer() = default;

shm_multiplexer* shm_multiplexer::of(caf::actor_system& sys) noexcept {
  if (!sys.has_middleman())
    return nullptr;
  return dynamic_cast<shm_multiplexer*>(&sys.middleman().backend());
}

void shm_multiplexer::add_poller(detail::ring_poller* p) {
  doorbell_name(); // creates it on first use
  if (doorbell_ && !doorbell_active_) {
    doorbell_->start();
    doorbell_active_ = true;
  }
  pollers_.push_back(p);
  recompute_wait();
}

void shm_multiplexer::remove_poller(detail::ring_poller* p) {
  auto i = std::find(pollers_.begin(), pollers_.end(), p);
  if (i == pollers_.end())
    return;
  *i = nullptr; // compacted after the current pass (we may be inside p->poll)
  removed_ = true;
  recompute_wait();
  if (doorbell_active_
      && std::none_of(pollers_.begin(), pollers_.end(),
                      [](auto* x) { return x != nullptr; })) {
    // The doorbell would keep the loop alive after the last socket closed.
    doorbell_->stop();
    doorbell_active_ = false;
  }
}

const std::string& shm_multiplexer::doorbell_name() {
  if (!doorbell_) {
    doorbell_ = detail::doorbell_receiver::make(*this);
    if (doorbell_)
      doorbell_name_ = doorbell_->name();
  }
  return doorbell_name_;
}

void shm_multiplexer::recompute_wait() {
  busy_poll_ = false;
  spin_count_ = 0;
  for (auto* p : pollers_) {
    if (p == nullptr)
      continue;
    if (p->mode == wait_mode::busy_poll)
      busy_poll_ = true;
    else if (p->mode == wait_mode::spin_then_block)
      spin_count_ = std::max(spin_count_, p->spin_count);
  }
}

bool shm_multiplexer::service_rings() {
  bool work = false;
  // By index: a poll may add pollers (a forwarded message starts nothing,
  // but be safe) or remove them (a link closing).
  for (size_t i = 0; i < pollers_.size(); ++i)
    if (auto* p = pollers_[i]; p != nullptr && p->ready())
      work |= p->poll();
  if (removed_) {
    pollers_.erase(std::remove(pollers_.begin(), pollers_.end(), nullptr),
                   pollers_.end());
    removed_ = false;
  }
  return work;
}

void shm_multiplexer::sleep_until_event() {
  // Dekker-style with the producers' notify: mark, fence, re-check, sleep.
  for (auto* p : pollers_)
    if (p != nullptr)
      p->incoming().consumer_sleeping.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool ready = std::any_of(pollers_.begin(), pollers_.end(),
                           [](auto* p) { return p != nullptr && p->ready(); });
  if (!ready)
    poll_once(true);
  // Pollers removed meanwhile are gone; new ones were never marked.
  for (auto* p : pollers_)
    if (p != nullptr)
      p->incoming().consumer_sleeping.store(0, std::memory_order_relaxed);
}

void shm_multiplexer::run() {
  uint32_t idle = 0;
  uint32_t turns = 0;
  uint32_t idle_turns = 0;
  while (num_socket_handlers() > 0) {
    if (pollers_.empty()) {
      poll_once(true); // exactly the default backend
      continue;
    }
    bool work = service_rings();
    // Frames handed to CAF workers woke them, often on this very CPU: let
    // them run now instead of at the end of our time slice.
    if (work)
      sched_yield();
    if (++turns >= socket_poll_interval) {
      turns = 0;
      if (poll_once(false))
        work = true;
    }
    if (work) {
      idle = 0;
      continue;
    }
    if (busy_poll_ || ++idle < spin_count_) {
      // A busy-polling loop would otherwise starve its own process's
      // workers of the CPU they share with it.
      if (busy_poll_ && (++idle_turns & 63) == 0)
        sched_yield();
      else
        _mm_pause();
      continue;
    }
    idle = 0;
    sleep_until_event();
  }
}

void load_middleman(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman, shm_multiplexer>();
}

} // namespace mycelium::transports::shm
