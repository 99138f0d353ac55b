#include "mycelium/transports/loop/io_loop.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

#include <cerrno>

#include <sched.h>
#include <sys/epoll.h>

#include <caf/config_value.hpp>
#include <caf/defaults.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/settings.hpp>

#include "doorbell.hpp"
#include "mycelium/actors/loop_thread.hpp"
#include "mycelium/detail/spin_step.hpp"

namespace mycelium::transports {

// -- poller and loop_registration ----------------------------------------------

poller::~poller() = default;

flusher::~flusher() = default;

loop_registration::loop_registration(loop_registration&& other) noexcept
  : loop_(other.loop_), slot_(other.slot_) {
  other.loop_ = nullptr;
}

loop_registration& loop_registration::operator=(loop_registration&& other) noexcept {
  if (this != &other) {
    reset();
    loop_ = other.loop_;
    slot_ = other.slot_;
    other.loop_ = nullptr;
  }
  return *this;
}

loop_registration::~loop_registration() {
  reset();
}

void loop_registration::reset() noexcept {
  if (loop_ != nullptr) {
    loop_->remove_entry(slot_);
    loop_ = nullptr;
  }
}

// -- io_loop -------------------------------------------------------------------

struct io_loop::counters {
  std::atomic<uint64_t> turns{0};
  std::atomic<uint64_t> resumed{0};
  std::atomic<uint64_t> polled{0};
  std::atomic<uint64_t> sleeps{0};
  std::atomic<uint64_t> socket_polls{0};
  std::atomic<uint64_t> flushes{0};
  std::atomic<uint64_t> lends{0};
  std::atomic<uint64_t> attends{0};
  std::atomic<uint64_t> timers{0};
};

namespace {

/// What another thread sends through CAF's pipe to wake a sleeping loop: its
/// resume does nothing, the woken loop takes its inbox. One instance for
/// every loop, never destroyed (CAF's multiplexer releases what is left in
/// its pipe when it is destroyed, after our members).
class wake_token final : public caf::resumable {
public:
  subtype_t subtype() const override { return function_object; }
  resume_result resume(caf::execution_unit*, size_t) override { return done; }
  void intrusive_ptr_add_ref_impl() override {}
  void intrusive_ptr_release_impl() override {}
};

wake_token* the_wake_token() {
  static auto* token = new wake_token;
  return token;
}

/// CAF keeps its epoll descriptor private and has no call that waits for
/// readiness without handling the events. A loop that lends its turns must
/// wait exactly so (a lender may be handling the events), so the descriptor
/// is read through the one route the language leaves open: access checks do
/// not apply to the arguments of an explicit instantiation
/// ([temp.explicit]/12 in C++17). A CAF that renames the member fails to
/// compile here, not at run time.
struct epollfd_tag {
  using type = caf::io::network::native_socket caf::io::network::default_multiplexer::*;
  friend type member_of(epollfd_tag) noexcept;
};

template <class Tag, typename Tag::type Member>
struct expose_member {
  friend typename Tag::type member_of(Tag) noexcept { return Member; }
};

template struct expose_member<epollfd_tag, &caf::io::network::default_multiplexer::epollfd_>;

/// Single-writer counter bump (the turns' thread), read by anyone.
void bump(std::atomic<uint64_t>& x, uint64_t n = 1) noexcept {
  x.store(x.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

} // namespace

io_loop::io_loop(caf::actor_system* sys)
  : default_multiplexer(sys), counters_(std::make_unique<counters>()) {
}

io_loop::~io_loop() {
  timers_.clear(); // their receivers' references, before the posted ones
  // Actors posted but never resumed hold a reference each (like the ones
  // CAF finds in its pipe at shutdown).
  for (auto& ptr : posted_)
    caf::scheduler::abstract_coordinator::cleanup_and_release(ptr.release());
  posted_.clear();
  std::vector<caf::resumable*> left;
  {
    std::lock_guard<std::mutex> guard{inbox_mtx_};
    left.swap(inbox_);
  }
  for (auto* ptr : left) // not under our lock: a release may take CAF's
    caf::scheduler::abstract_coordinator::cleanup_and_release(ptr);
}

io_loop* io_loop::of(caf::actor_system& sys) noexcept {
  if (!sys.has_middleman())
    return nullptr;
  return dynamic_cast<io_loop*>(&sys.middleman().backend());
}

bool io_loop::on_loop_thread() const noexcept {
  return runs_turns_of(this);
}

io_loop_stats io_loop::stats() const noexcept {
  io_loop_stats r;
  auto rd = [](const std::atomic<uint64_t>& x) { return x.load(std::memory_order_relaxed); };
  r.turns = rd(counters_->turns);
  r.resumed = rd(counters_->resumed);
  r.polled = rd(counters_->polled);
  r.sleeps = rd(counters_->sleeps);
  r.socket_polls = rd(counters_->socket_polls);
  r.flushes = rd(counters_->flushes);
  r.lends = rd(counters_->lends);
  r.attends = rd(counters_->attends);
  r.timers = rd(counters_->timers);
  return r;
}

void io_loop::exec_later(caf::resumable* ptr) {
  auto st = ptr->subtype();
  bool ours = st == caf::resumable::io_actor || st == caf::resumable::function_object;
  bool here = on_loop_thread();
  if (!ours) { // for CAF's worker pool
    if (here)
      woke_pool_ = true; // loop thread only
    default_multiplexer::exec_later(ptr);
    return;
  }
  if (here) {
    // Same thread: resumed at the start of the next turn, no pipe write.
    posted_.emplace_back(ptr, false); // adopts the caller's reference
    return;
  }
  {
    std::lock_guard<std::mutex> guard{inbox_mtx_};
    inbox_.push_back(ptr); // adopts the caller's reference
  }
  // Dekker style with `sleep`: the loop marks itself sleeping, then checks
  // the inbox; we fill the inbox, then check the mark. A loop that is lent
  // (its thread's wait bounded by `lend_grace`) needs no pipe write: the
  // next lender takes the inbox in its first turn (a Python caller
  // publishing into a socket link lends right after), or the loop thread
  // at the end of its grace period.
  inbox_ready_.store(true, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst) && !bounded_wait_.load(std::memory_order_seq_cst))
    default_multiplexer::exec_later(the_wake_token());
}

void io_loop::schedule_message(caf::actor_clock::time_point due, caf::strong_actor_ptr receiver,
                               caf::mailbox_element_ptr content) {
  if (!on_loop_thread()) {
    system().clock().schedule_message(due, std::move(receiver), std::move(content));
    return;
  }
  timers_.schedule(due, std::move(receiver), std::move(content));
}

size_t io_loop::fire_timers() {
  auto now = caf::actor_clock::clock_type::now();
  if (now < timers_.next_due())
    return 0;
  auto n = timers_.fire(now, this);
  bump(counters_->timers, n);
  return n;
}

void io_loop::take_inbox() {
  inbox_ready_.store(false, std::memory_order_seq_cst);
  std::lock_guard<std::mutex> guard{inbox_mtx_};
  for (auto* ptr : inbox_)
    posted_.emplace_back(ptr, false);
  inbox_.clear();
}

void io_loop::flush_at_turn_end(flusher& f) {
  if (std::find(flushers_.begin(), flushers_.end(), &f) == flushers_.end())
    flushers_.push_back(&f);
}

void io_loop::cancel_flush(flusher& f) noexcept {
  auto drop = [&f](std::vector<flusher*>& xs) {
    xs.erase(std::remove(xs.begin(), xs.end(), &f), xs.end());
  };
  drop(flushers_);
  // Running flushers may end others (a flush that closes a connection).
  std::replace(flushing_.begin(), flushing_.end(), &f, static_cast<flusher*>(nullptr));
}

void io_loop::run_flushers() {
  if (flushers_.empty())
    return;
  flushing_.swap(flushers_);
  for (size_t i = 0; i < flushing_.size(); ++i) // by index: see cancel_flush
    if (auto* f = flushing_[i]; f != nullptr)
      f->flush();
  bump(counters_->flushes, flushing_.size());
  flushing_.clear();
  // A flush that handed bytes to a scribe registered write interest.
  handle_internal_events();
}

size_t io_loop::add_entry(poller* p, idle_strategy idle, bool sockets,
                          bool every_turn) {
  size_t slot = 0;
  while (slot < entries_.size() && entries_[slot].live)
    ++slot;
  if (slot == entries_.size())
    entries_.emplace_back();
  entries_[slot] = entry{p, idle, true, sockets, every_turn};
  if (p != nullptr)
    ++live_pollers_;
  if (sockets)
    ++socket_requests_;
  if (every_turn)
    ++socket_watches_;
  recompute_idle();
  return slot;
}

void io_loop::remove_entry(size_t slot) noexcept {
  if (slot >= entries_.size() || !entries_[slot].live)
    return;
  if (entries_[slot].p != nullptr)
    --live_pollers_;
  if (entries_[slot].sockets)
    --socket_requests_;
  if (entries_[slot].every_turn)
    --socket_watches_;
  entries_[slot] = entry{}; // the slot is free; a running poll pass skips it
  recompute_idle();
  if (doorbell_active_ && live_pollers_ == 0) {
    // The doorbell would keep the loop alive after the last socket closed.
    doorbell_->stop();
    doorbell_active_ = false;
  }
}

loop_registration io_loop::add_poller(poller& p, idle_strategy idle) {
  doorbell_name(); // pollers are woken through the doorbell
  if (doorbell_ && !doorbell_active_) {
    doorbell_->start();
    doorbell_active_ = true;
  }
  return loop_registration{this, add_entry(&p, idle)};
}

loop_registration io_loop::request_idle(idle_strategy idle, bool sockets) {
  return loop_registration{this, add_entry(nullptr, idle, sockets)};
}

loop_registration io_loop::watch_sockets() {
  return loop_registration{this, add_entry(nullptr, idle_strategy::blocking(), false, true)};
}

const std::string& io_loop::doorbell_name() {
  if (!doorbell_) {
    doorbell_ = detail::doorbell_receiver::make(*this);
    if (doorbell_)
      doorbell_name_ = doorbell_->name();
  }
  return doorbell_name_;
}

void io_loop::recompute_idle() noexcept {
  auto merged = idle_strategy::blocking();
  for (auto& e : entries_)
    if (e.live)
      merged = idle_strategy::merge(merged, e.idle);
  idle_ = merged;
  mode_.store(merged.mode, std::memory_order_release);
}

size_t io_loop::run_posted() {
  if (posted_.empty())
    return 0;
  running_.swap(posted_); // resumed actors may post again (into posted_)
  auto n = running_.size();
  for (auto& ptr : running_) {
    switch (ptr->resume(this, max_throughput_)) {
      case caf::resumable::resume_later:
        posted_.emplace_back(std::move(ptr)); // more mail: next turn
        break;
      case caf::resumable::shutdown_execution_unit:
        ptr.release(); // CAF's shutdown helpers are not reference counted
        break;
      default:
        break; // done: drops our reference
    }
  }
  running_.clear();
  // Resumed brokers may have changed their sockets' epoll interest.
  handle_internal_events();
  bump(counters_->resumed, n);
  return n;
}

size_t io_loop::poll_pollers() {
  size_t work = 0;
  // By index: a poll may register pollers or end registrations.
  for (size_t i = 0; i < entries_.size(); ++i)
    if (auto* p = entries_[i].p; p != nullptr && entries_[i].live)
      work += p->poll();
  if (work > 0) {
    bump(counters_->polled, work);
    // What the pollers handled may have written to a scribe: its write
    // interest must reach epoll before the loop sleeps.
    handle_internal_events();
  }
  return work;
}

void io_loop::disarm_pollers() noexcept {
  for (auto& e : entries_)
    if (e.p != nullptr && e.live)
      e.p->disarm();
}

namespace {

/// Waits up to `timeout` for any event of epoll `fd`, without taking it;
/// true if one is there.
bool epoll_ready(int fd, std::chrono::nanoseconds timeout) {
  epoll_event ev;
  timespec ts{static_cast<time_t>(timeout.count() / 1000000000),
              static_cast<long>(timeout.count() % 1000000000)};
  int n = ::epoll_pwait2(fd, &ev, 1, &ts, nullptr);
  if (n < 0 && errno == ENOSYS) // a kernel before 5.11: milliseconds
    n = ::epoll_wait(fd, &ev, 1, static_cast<int>((timeout.count() + 999999) / 1000000));
  return n > 0;
}

} // namespace

void io_loop::wait_for_events(std::unique_lock<std::mutex>& baton) {
  // With lending on, a lender may run the turns while this thread waits,
  // and it may hand back with the pollers disarmed, because it comes back
  // within microseconds (a ping-pong) and a producer ringing the doorbell
  // for each frame would cost both sides a system call and this thread a
  // wake-up. So while lenders come, the wait is bounded by `lend_grace`,
  // and when a whole grace period passed without a lender while the
  // pollers were left disarmed, this thread takes the turns back
  // ("attends"). After `lend_quiet` without a lender (the pollers are
  // armed then: a lender that finds the wait unbounded arms them when it
  // leaves) it waits for events only. No clock on the lender's side: lends
  // are counted. `bounded_wait_` tells posters and lenders which wait runs.
  auto fd = this->*member_of(epollfd_tag{});
  constexpr uint32_t quiet_limit = static_cast<uint32_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(lend_quiet) / lend_grace);
  auto seen = lend_count_.load(std::memory_order_acquire);
  auto noticed = [&] { // a lender came since `seen`: lending is active
    auto n = lend_count_.load(std::memory_order_acquire);
    if (n != seen) {
      seen = n;
      quiet_periods_ = 0;
    }
  };
  bool forever = quiet_periods_ >= quiet_limit;
  // The earliest timed message ends the wait at the latest (read here,
  // under the turn lock; a lender that schedules an earlier one wakes us).
  auto deadline = timer_wake_;
  bounded_wait_.store(!forever, std::memory_order_seq_cst);
  struct unmark {
    std::atomic<bool>& flag;
    ~unmark() { flag.store(false, std::memory_order_seq_cst); }
  } unmark_on_return{bounded_wait_};
  baton.unlock(); // lenders may run the turns now
  for (;;) {
    // "For ever" is bounded too, loosely: a lender may have run the turn
    // that shut the loop down, after which no event would wake this thread.
    auto bound = std::chrono::duration_cast<std::chrono::nanoseconds>(
      forever ? std::chrono::microseconds{lend_idle_check} : lend_grace);
    if (deadline != caf::actor_clock::time_point::max()) {
      // Past it, a lender held the turns (it delivers what is due): look
      // again every grace period until this thread has the turns and sees
      // the timers the lender left, so none waits for a "for ever" wait.
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - caf::actor_clock::clock_type::now());
      bound = std::min(bound, left.count() > 0
                                ? left
                                : std::chrono::duration_cast<std::chrono::nanoseconds>(lend_grace));
    }
    if (epoll_ready(fd, bound)) {
      baton.lock(); // an event: handle it (after a lender's hand-back)
      noticed();
      return;
    }
    if (!baton.try_lock())
      continue; // a lender runs the turns
    if (num_socket_handlers() == 0)
      return; // shut down (by a lender): `run` ends
    if (inbox_ready_.load(std::memory_order_seq_cst))
      return; // posted while the wait was bounded (no pipe write): take it
    if (!timers_.empty() && caf::actor_clock::clock_type::now() >= timers_.next_due())
      return; // a timed message is due: the turns deliver it
    deadline = timers_.next_due(); // a lender may have scheduled meanwhile
    timer_wake_ = deadline;
    auto before = seen;
    noticed();
    if (seen == before) { // a whole grace period without a lender
      if (unattended_) {
        bump(counters_->attends);
        return; // disarmed pollers that nobody polls: attend
      }
      if (++quiet_periods_ >= quiet_limit && lenders_.load(std::memory_order_acquire) == 0) {
        forever = true; // the pollers are armed: wait for events only
        // Posters write the pipe again from now on; one that looked at the
        // old mark left its post in the inbox (Dekker, as in `sleep`).
        bounded_wait_.store(false, std::memory_order_seq_cst);
        if (inbox_ready_.load(std::memory_order_seq_cst))
          return;
      }
    }
    baton.unlock();
  }
}

void io_loop::sleep(std::unique_lock<std::mutex>& baton) {
  // Dekker style with the producers: each poller marks itself sleeping,
  // fences and re-checks; a producer that sees the mark rings the doorbell.
  // Pending epoll changes (a scribe's write interest) take effect only when
  // applied; CAF applies them after an event, which may never come.
  handle_internal_events();
  size_t armed = 0;
  sleeping_.store(true, std::memory_order_seq_cst);
  // A timed message bounds the sleep; one that is due means no sleep.
  auto next_timer = timers_.next_due();
  bool ready = !posted_.empty() || !flushers_.empty()
               || inbox_ready_.load(std::memory_order_seq_cst)
               || (next_timer != caf::actor_clock::time_point::max()
                   && caf::actor_clock::clock_type::now() >= next_timer);
  for (; armed < entries_.size() && !ready; ++armed)
    if (auto* p = entries_[armed].p; p != nullptr && entries_[armed].live)
      ready = !p->arm();
  if (!ready) {
    bump(counters_->sleeps);
    if (!lending_.load(std::memory_order_acquire)) {
      if (next_timer == caf::actor_clock::time_point::max()) {
        poll_once(true);
      } else {
        auto left = next_timer - caf::actor_clock::clock_type::now();
        if (left > std::chrono::nanoseconds{0})
          (void) epoll_ready(this->*member_of(epollfd_tag{}),
                             std::chrono::duration_cast<std::chrono::nanoseconds>(left));
        poll_once(false);
      }
    } else {
      // The events are handled with the turn lock held, after the wait: a
      // lender may run the turns while this thread waits.
      timer_wake_ = next_timer;
      wait_for_events(baton);
      timer_wake_ = caf::actor_clock::time_point::max();
      sleeping_.store(false, std::memory_order_relaxed);
      unattended_ = false;
      disarm_pollers(); // a lender may have added pollers, all armed
      poll_once(false);
      return;
    }
  }
  sleeping_.store(false, std::memory_order_relaxed);
  // Entries removed meanwhile are gone; new ones were never armed.
  for (size_t i = 0; i < armed && i < entries_.size(); ++i)
    if (auto* p = entries_[i].p; p != nullptr && entries_[i].live)
      p->disarm();
}

size_t io_loop::turn(uint32_t& turns, bool& just_slept) {
  bump(counters_->turns);
  size_t work = 0;
  // Timed messages first: the actors they go to are resumed in this turn.
  if (!timers_.empty())
    work += fire_timers();
  if (inbox_ready_.load(std::memory_order_relaxed))
    take_inbox();
  work += run_posted();
  work += poll_pollers();
  // Right after a blocking epoll the sockets were just serviced. Every
  // turn while a socket link watches them (its scribe writes only when
  // epoll reports the socket writable), and when sockets are all there is
  // to poll: socket links wait on them, and a loop that blocks next polls
  // them right after its work anyway. Else (rings, socket links read by
  // their pollers, or loop services fed through the inbox) every
  // `socket_poll_interval` turns.
  bool sockets_first = socket_watches_ > 0
                       || (live_pollers_ == 0
                           && (socket_requests_ > 0 || idle_.mode == wait_mode::block));
  if (!just_slept && (sockets_first || ++turns >= socket_poll_interval)) {
    turns = 0;
    bump(counters_->socket_polls);
    if (poll_once(false))
      ++work;
  }
  just_slept = false;
  // Everything this turn wrote goes to the kernel now, in one call per
  // socket.
  run_flushers();
  if (woke_pool_) {
    // Work handed to CAF's workers woke a thread that often shares this
    // CPU: let it run now instead of at the end of our time slice.
    woke_pool_ = false;
    sched_yield();
  }
  return work;
}

void io_loop::run() {
  std::unique_lock<std::mutex> baton{baton_};
  current_loop() = this;
  in_run_ = true;
  max_throughput_ = std::min(
    resume_batch, caf::get_or(system().config(), "scheduler.max-throughput",
                              caf::defaults::scheduler::max_throughput));
  uint32_t turns = 0;
  uint32_t idle_turns = 0;
  bool just_slept = false;
  auto idle_since = std::chrono::steady_clock::now();
  while (num_socket_handlers() > 0 || !posted_.empty() || !flushers_.empty()
         || inbox_ready_.load(std::memory_order_relaxed)) {
    if (turn(turns, just_slept) > 0) {
      idle_turns = 0;
      continue;
    }
    // A lender waits for the turns: go to sleep now, it polls meanwhile.
    bool lender = lenders_.load(std::memory_order_acquire) > 0;
    switch (lender ? wait_mode::block : idle_.mode) {
      case wait_mode::busy_poll:
        // Yield now and then: the process's workers may share this CPU.
        mycelium::detail::spin_step(++idle_turns);
        continue;
      case wait_mode::spin_then_block:
        if (idle_turns++ == 0) {
          idle_since = std::chrono::steady_clock::now();
          continue;
        }
        // The clock costs ~20 ns; look at it every 16 idle turns.
        if ((idle_turns & 15) != 0
            || std::chrono::steady_clock::now() - idle_since < idle_.spin) {
          // Yielding now and then, as busy_poll does: a thread woken on
          // this CPU (another process's loop that our frame woke) would
          // otherwise wait for the whole spin.
          mycelium::detail::spin_step(idle_turns);
          continue;
        }
        break;
      case wait_mode::block:
        break;
    }
    idle_turns = 0;
    // This turn's epoll round may have applied the removal of the last
    // socket (e.g. CAF's shutdown closing its pipe): nothing could wake us.
    if (num_socket_handlers() == 0)
      continue; // the loop's condition decides
    sleep(baton);
    just_slept = true;
  }
  in_run_ = false;
  current_loop() = nullptr;
}

io_loop::lend_result io_loop::lend(bool (*done)(void*) noexcept, void* ctx,
                                   std::chrono::steady_clock::time_point until) {
  if (!lending_.load(std::memory_order_acquire) || current_loop() != nullptr)
    return lend_result::refused;
  lenders_.fetch_add(1, std::memory_order_acq_rel);
  // The loop thread lets go at its next idle turn (it sees `lenders_`).
  std::unique_lock<std::mutex> baton{baton_, std::defer_lock};
  for (uint32_t i = 1; !baton.try_lock(); ++i) {
    if (done(ctx) || ((i & 15) == 0 && std::chrono::steady_clock::now() >= until)) {
      lenders_.fetch_sub(1, std::memory_order_acq_rel);
      return done(ctx) ? lend_result::done : lend_result::timeout;
    }
    mycelium::detail::cpu_relax();
  }
  if (!in_run_) { // before `run` or after it ended
    baton.unlock();
    lenders_.fetch_sub(1, std::memory_order_acq_rel);
    return lend_result::refused;
  }
  current_loop() = this;
  lend_count_.fetch_add(1, std::memory_order_acq_rel);
  bump(counters_->lends);
  unattended_ = false;
  disarm_pollers(); // producers need not ring: we poll
  auto result = lend_result::timeout;
  uint32_t turns = 0;
  uint32_t idle_turns = 0;
  bool just_slept = false;
  for (uint32_t i = 1;; ++i) {
    if (done(ctx)) {
      result = lend_result::done;
      break;
    }
    if ((i & 15) == 0 && std::chrono::steady_clock::now() >= until)
      break;
    if (turn(turns, just_slept) == 0)
      mycelium::detail::spin_step(++idle_turns);
  }
  hand_back();
  current_loop() = nullptr;
  baton.unlock();
  lenders_.fetch_sub(1, std::memory_order_acq_rel);
  return result;
}

void io_loop::hand_back() noexcept {
  // Work left (a frame that came meanwhile, posted actors, flushers) goes
  // to the loop thread: the pipe write ends its epoll wait, and it takes
  // the lock we release next. Else, if that thread waits for ever, the
  // pollers are armed as its `sleep` left them (producers ring the
  // doorbell again); if its wait is bounded, they stay disarmed, and it
  // attends them after a grace period unless a lender comes back first.
  handle_internal_events();
  // A timed message this lender scheduled, due before the loop thread's
  // wait ends, counts as work left.
  bool left = !posted_.empty() || !flushers_.empty()
              || inbox_ready_.load(std::memory_order_seq_cst)
              || timers_.next_due() < timer_wake_;
  // Lenders run only while the loop thread waits: `bounded_wait_` is its
  // wait's kind.
  if (!left && bounded_wait_.load(std::memory_order_relaxed)) {
    // A frame that came since the last poll: arm() re-checks (a producer
    // that saw the brief mark rings once; harmless).
    for (auto& e : entries_)
      if (e.p != nullptr && e.live) {
        if (!e.p->arm())
          left = true;
        e.p->disarm();
      }
    if (!left) {
      unattended_ = true;
      return;
    }
  }
  for (auto& e : entries_)
    if (e.p != nullptr && e.live && !e.p->arm())
      left = true;
  if (left)
    default_multiplexer::exec_later(the_wake_token());
}

void load_io_loop(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman, io_loop>();
}

} // namespace mycelium::transports
