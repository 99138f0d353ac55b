#include "inbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "mycelium/actors/log.hpp"
#include "mycelium/detail/spin_step.hpp"

namespace mycelium::python {

inbox::inbox(std::string owner, size_t capacity)
  : owner_(std::move(owner)), capacity_(capacity == 0 ? 1 : capacity) {
}

inbox::~inbox() {
  if (efd_ >= 0)
    ::close(efd_);
}

void inbox::push(inbox_event&& ev, bool droppable) {
  bool was_empty = false;
  int efd = -1;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (droppable && events_.size() >= capacity_) {
      ++dropped_;
      ++unlogged_drops_;
      auto now = std::chrono::steady_clock::now();
      if (now - last_drop_log_ >= std::chrono::seconds{1}) {
        log(log_level::warning, owner_,
            "the Python consumer is " + std::to_string(events_.size())
              + " messages behind (queue capacity " + std::to_string(capacity_)
              + "): dropped " + std::to_string(unlogged_drops_)
              + " message(s), counted in 'dropped'");
        unlogged_drops_ = 0;
        last_drop_log_ = now;
      }
      return;
    }
    was_empty = events_.empty();
    events_.push_back(std::move(ev));
    count_.store(events_.size(), std::memory_order_release);
    if (events_.size() > high_water_)
      high_water_ = events_.size();
    efd = efd_;
  }
  if (sleepers_.load(std::memory_order_seq_cst) > 0)
    cv_.notify_one();
  if (was_empty && efd >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(efd, &one, sizeof(one));
  }
}

void inbox::push_message(uint32_t type_id, const uint8_t* p, size_t n) {
  inbox_event ev;
  ev.kind = inbox_event::message;
  ev.type_id = type_id;
  ev.payload.assign(p, p + n);
  push(std::move(ev), true);
}

void inbox::push_value(uint32_t type_id, caf::message msg) {
  inbox_event ev;
  ev.kind = inbox_event::message;
  ev.type_id = type_id;
  ev.value = std::move(msg);
  push(std::move(ev), true);
}

void inbox::push_request(uint64_t id, uint32_t type_id, const uint8_t* p, size_t n) {
  inbox_event ev;
  ev.kind = inbox_event::request;
  ev.type_id = type_id;
  ev.request_id = id;
  ev.payload.assign(p, p + n);
  push(std::move(ev), false);
}

void inbox::push_stop(std::string reason) {
  inbox_event ev;
  ev.kind = inbox_event::stop;
  ev.text = std::move(reason);
  push(std::move(ev), false);
}

bool inbox::pop(inbox_event& out, std::chrono::nanoseconds timeout,
                std::chrono::nanoseconds spin) {
  if (spin.count() > 0) {
    auto until = std::chrono::steady_clock::now() + std::min(spin, timeout);
    uint32_t turns = 0;
    do {
      for (int i = 0; i < 64; ++i) {
        if (count_.load(std::memory_order_acquire) > 0)
          return try_pop(out) || pop(out, timeout, {});
        detail::spin_step(++turns);
      }
    } while (std::chrono::steady_clock::now() < until);
  }
  std::unique_lock<std::mutex> guard{mtx_};
  // Counted before the check under the lock, so a push either sees the
  // sleeper (and notifies) or happened before the check.
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  bool got = cv_.wait_for(guard, timeout, [this] { return !events_.empty(); });
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
  if (!got)
    return false;
  out = std::move(events_.front());
  events_.pop_front();
  count_.store(events_.size(), std::memory_order_release);
  return true;
}

bool inbox::try_pop(inbox_event& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (events_.empty())
    return false;
  out = std::move(events_.front());
  events_.pop_front();
  count_.store(events_.size(), std::memory_order_release);
  return true;
}

int inbox::event_fd() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (efd_ < 0) {
    efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_ >= 0 && !events_.empty()) {
      uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(efd_, &one, sizeof(one));
    }
  }
  return efd_;
}

void inbox::finish() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    finished_ = true;
  }
  done_cv_.notify_all();
}

bool inbox::await_finished(std::chrono::nanoseconds timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  return done_cv_.wait_for(guard, timeout, [this] { return finished_; });
}

size_t inbox::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return events_.size();
}

uint64_t inbox::dropped() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return dropped_;
}

uint64_t inbox::high_water() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return high_water_;
}

} // namespace mycelium::python
