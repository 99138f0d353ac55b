#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/intrusive_ptr.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/resumable.hpp>

#include "mycelium/actors/loop_clock.hpp"
#include "mycelium/transports/loop/flusher.hpp"
#include "mycelium/transports/loop/idle_strategy.hpp"
#include "mycelium/transports/loop/loop_timers.hpp"
#include "mycelium/transports/loop/poller.hpp"

namespace mycelium::transports {

namespace detail {
class doorbell_receiver;
} // namespace detail

/// Counters of one I/O loop (read with relaxed loads from any thread).
struct io_loop_stats {
  uint64_t turns = 0;    ///< iterations of the run loop
  uint64_t resumed = 0;  ///< actors (loop services, brokers) resumed on it
  uint64_t polled = 0;   ///< items the pollers handled (frames, ...)
  uint64_t sleeps = 0;   ///< times the loop blocked in epoll
  uint64_t socket_polls = 0; ///< non-blocking epoll calls
  uint64_t flushes = 0;  ///< flusher runs at the end of a turn
  uint64_t lends = 0;    ///< times another thread ran the turns (`lend`)
  uint64_t attends = 0;  ///< times the loop thread took back disarmed pollers
  uint64_t timers = 0;   ///< messages it delivered at their due time (`schedule_message`)
};

/// The node's one run loop: CAF's epoll multiplexer (the middleman's I/O
/// thread) turned into a loop that, on every turn and in one place,
///
///  1. delivers the messages whose time has come (`schedule_message`: a
///     loop service's `delayed_send` to itself, timed here and not by
///     CAF's timer thread),
///  2. resumes the actors posted to it (loop services, link brokers),
///  3. calls every registered `poller` (shared-memory rings),
///  4. polls the sockets through epoll (without blocking, every turn when no
///     poller is registered, otherwise every `socket_poll_interval` turns),
///  5. runs the `flusher`s that asked for the end of the turn (socket links
///     writing a burst's frames in one system call),
///  6. and, after a turn without work, idles by the most eager
///     `idle_strategy` that any registration asked for: busy-poll, spin for
///     a duration then block, or block. Blocking arms every poller (so a
///     producer rings the loop's doorbell) and waits in epoll, at most until
///     the earliest timed message is due.
///
/// With nothing registered it idles like CAF's default backend, so any
/// program may load it. Load it instead of the default backend before the
/// actor system is created:
///
///     mycelium::transports::load_io_loop(cfg);
///     // = cfg.load<caf::io::middleman, mycelium::transports::io_loop>()
///
/// Actors posted from other threads (a pool service's message to a link's
/// broker, a timer) go into the loop's inbox, which it takes on its next
/// turn without a system call; only a loop that sleeps is woken, through
/// CAF's pipe (one write and one epoll wake-up). Either way they are resumed
/// by the loop itself, at most `resume_batch` messages at a time.
///
/// **Lending.** With `enable_lending`, a thread that waits for something
/// the loop delivers (a Python caller spinning in `Subscription.get`) may
/// run the loop's turns itself while it waits (`lend`, after Aeron's
/// `AgentInvoker`): the loop thread then sleeps in epoll, so the process
/// has one busy thread instead of two, and the waiter takes its message
/// from the ring on its own thread, with no hand-over. One thread at a
/// time runs the turns: the loop thread holds the turn lock except while
/// it sleeps, and a lender takes it only then. A lender hands back with
/// the pollers disarmed while the loop thread's wait is bounded (that
/// thread attends them after `lend_grace`), armed otherwise, and wakes the
/// loop thread when it leaves work.
///
/// Thread-safety: `add_poller`, `request_idle`, `flush_at_turn_end`,
/// `cancel_flush`, `watch_sockets` and `doorbell_name` belong to the
/// thread that runs the loop's turns (`on_loop_thread`); `stats`, `of`,
/// `enable_lending` and `lend` are safe from any thread.
class io_loop : public caf::io::network::default_multiplexer, public mycelium::loop_clock {
public:
  /// Turns between two non-blocking socket polls while pollers are
  /// registered: an epoll_wait costs about as much as a ring round trip.
  static constexpr uint32_t socket_poll_interval = 32;

  /// Messages one resume of a posted actor (a link's broker, a loop
  /// service) handles at most before the loop goes on with its pollers and
  /// sockets (fewer if `scheduler.max-throughput` says so). CAF's default is
  /// unlimited, and a broker whose publishers on other threads keep its
  /// mailbox full would otherwise keep the loop from its sockets, rings and
  /// heartbeats (CAF's own pipe path resumes without a bound; posts now
  /// reach the loop through its inbox instead).
  static constexpr size_t resume_batch = 256;

  /// How long pollers that a lender left disarmed may go unpolled before
  /// the loop thread takes the turns back (see "Lending" above): the
  /// longest a frame for someone other than the lender can wait while the
  /// lender's thread is away (running Python).
  static constexpr std::chrono::microseconds lend_grace{100};

  /// After this long without a lender, the loop thread arms its pollers
  /// and waits for events without a bound again.
  static constexpr std::chrono::milliseconds lend_quiet{10};

  /// With lending on, the loop thread's unbounded wait still looks every
  /// this often whether a lender shut the loop down meanwhile.
  static constexpr std::chrono::milliseconds lend_idle_check{100};

  explicit io_loop(caf::actor_system* sys);
  ~io_loop() override;

  void run() override;
  void exec_later(caf::resumable* ptr) override;

  /// Polls `p` on every turn until the registration ends; the loop idles at
  /// least as eagerly as `idle` meanwhile. Loop thread only.
  [[nodiscard]] loop_registration add_poller(poller& p, idle_strategy idle);

  /// Asks the loop to idle at least as eagerly as `idle` until the
  /// registration ends. `sockets`: the requester's data arrive through
  /// epoll (a socket link), so a loop without pollers polls the sockets on
  /// every turn; a request for work that arrives through the inbox (loop
  /// services, `idle_request`) leaves that to one turn in
  /// `socket_poll_interval`, since an epoll_wait costs more than a turn.
  /// Loop thread only.
  [[nodiscard]] loop_registration request_idle(idle_strategy idle, bool sockets = true);

  /// Runs `f.flush()` once at the end of the current turn (once however
  /// often it asks). Loop thread only.
  void flush_at_turn_end(flusher& f);

  /// Withdraws `f`'s request (idempotent); a flusher calls it before it
  /// dies. Loop thread only.
  void cancel_flush(flusher& f) noexcept;

  /// Has the loop poll the sockets through epoll on every turn until the
  /// registration ends, pollers or not: what a socket link holds while
  /// CAF's scribe has bytes to write (it writes when epoll reports the
  /// socket writable) or while its poller saw the end of the stream (the
  /// scribe reports it). Leaves the idle strategy alone. Loop thread only.
  [[nodiscard]] loop_registration watch_sockets();

  /// The strategy the loop follows now (the merge of all registrations).
  /// Loop thread only.
  idle_strategy current_idle() const noexcept { return idle_; }

  /// Its mode, readable from any thread (diagnostics and tests).
  wait_mode current_mode() const noexcept { return mode_.load(std::memory_order_acquire); }

  /// The abstract socket name producers ring to wake this loop (created on
  /// first use; empty, with errno set, if no socket could be made). Loop
  /// thread only.
  const std::string& doorbell_name();

  /// Whether the caller runs this loop's turns now: the loop's thread, or
  /// a thread it is lent to (mycelium::runs_turns_of).
  bool on_loop_thread() const noexcept;

  /// What `lend` did.
  enum class lend_result {
    done,    ///< `done` became true (on the lender's thread)
    timeout, ///< `until` passed first
    refused, ///< not lent: lending is off, the loop does not run, or the
             ///< caller already runs a loop's turns; nothing was run
  };

  /// Lets `lend` run turns on other threads from now on (a Python
  /// process's runtime enables it; a C++ node when an embedded Python service
  /// asks, param `lend_loop`). Any thread.
  void enable_lending() noexcept { lending_.store(true, std::memory_order_release); }

  bool lending_enabled() const noexcept { return lending_.load(std::memory_order_acquire); }

  /// Runs the loop's turns on the calling thread until `done(ctx)` is true
  /// or `until` passes (`done` is called between turns and must be cheap;
  /// it is also how a lender sees what the turns delivered to it). Waits
  /// for the loop thread to go idle first, which takes at most its current
  /// turn. Any thread but one that runs a loop's turns already.
  [[nodiscard]] lend_result lend(bool (*done)(void* ctx) noexcept, void* ctx,
                                 std::chrono::steady_clock::time_point until);

  /// Delivers `content` to `receiver` on this loop's thread once `due` has
  /// come (loop_clock; counted in `timers`). Off the loop's thread it hands
  /// the message to CAF's clock instead.
  void schedule_message(caf::actor_clock::time_point due, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override;

  io_loop_stats stats() const noexcept;

  /// The loop of `sys`, or nullptr when its middleman runs another backend
  /// (or none).
  static io_loop* of(caf::actor_system& sys) noexcept;

private:
  friend class loop_registration;

  struct entry {
    poller* p = nullptr; ///< null for idle requests and free slots
    idle_strategy idle;
    bool live = false;
    bool sockets = false; ///< an idle request for data through epoll
    bool every_turn = false; ///< `watch_sockets`
  };

  size_t add_entry(poller* p, idle_strategy idle, bool sockets = false,
                   bool every_turn = false);
  void remove_entry(size_t slot) noexcept;
  void recompute_idle() noexcept;
  /// Moves what other threads posted into `posted_`.
  void take_inbox();
  /// One turn (inbox, posted actors, pollers, sockets, flushers); the work
  /// it did. `turns` and `just_slept` are the caller's socket-poll state.
  size_t turn(uint32_t& turns, bool& just_slept);
  /// Waits on CAF's epoll without handling the events (the turns do), with
  /// the turn lock released meanwhile.
  void wait_for_events(std::unique_lock<std::mutex>& baton);
  /// Delivers the timed messages that are due; how many.
  size_t fire_timers();
  /// A lender leaves: arms the pollers and wakes the loop thread if work is
  /// left for it.
  void hand_back() noexcept;
  void disarm_pollers() noexcept;
  size_t run_posted();
  size_t poll_pollers();
  /// Runs the flushers that asked for this turn's end.
  void run_flushers();
  /// Arms the pollers, re-checks, blocks in epoll, disarms.
  void sleep(std::unique_lock<std::mutex>& baton);

  std::vector<entry> entries_;
  size_t live_pollers_ = 0;
  size_t socket_requests_ = 0; ///< live entries with `sockets`
  size_t socket_watches_ = 0;  ///< live entries with `every_turn`
  idle_strategy idle_ = idle_strategy::blocking();
  std::atomic<wait_mode> mode_{wait_mode::block}; ///< idle_.mode, for other threads
  std::vector<caf::intrusive_ptr<caf::resumable>> posted_;
  std::vector<caf::intrusive_ptr<caf::resumable>> running_;
  std::vector<flusher*> flushers_;     ///< asked for this turn's end
  std::vector<flusher*> flushing_;     ///< being run (they may ask again)
  size_t max_throughput_ = 0;
  bool woke_pool_ = false; ///< this turn handed work to CAF's worker pool
  std::string doorbell_name_;
  std::unique_ptr<detail::doorbell_receiver> doorbell_;
  bool doorbell_active_ = false;
  std::mutex inbox_mtx_;
  std::vector<caf::resumable*> inbox_; ///< from other threads; one reference each
  std::atomic<bool> inbox_ready_{false}; ///< `inbox_` has something
  std::atomic<bool> sleeping_{false};    ///< the loop is (about to be) in epoll
  /// The turn lock: held by whoever runs the turns (the loop thread, or a
  /// lender while the loop thread sleeps).
  std::mutex baton_;
  std::atomic<bool> lending_{false};
  std::atomic<uint32_t> lenders_{0}; ///< threads waiting for or holding the turns
  std::atomic<uint64_t> lend_count_{0}; ///< lends so far
  /// The loop thread waits bounded by `lend_grace` (lenders come): posts
  /// from other threads need no pipe write, and a lender may leave the
  /// pollers disarmed.
  std::atomic<bool> bounded_wait_{false};
  // Under `baton_`: a lender handed back with the pollers disarmed; grace
  // periods in a row without a lender (starts "quiet").
  bool unattended_ = false;
  uint32_t quiet_periods_ = UINT32_MAX;
  bool in_run_ = false;              ///< `run` is in its loop (under `baton_`)
  loop_timers timers_;               ///< under `baton_` (the turns' thread)
  /// Under `baton_`: when the loop thread's current wait ends at the
  /// latest for a timer (max when none): a lender that schedules an
  /// earlier one wakes it on leaving.
  caf::actor_clock::time_point timer_wake_ = caf::actor_clock::time_point::max();
  struct counters;
  std::unique_ptr<counters> counters_;
};

/// Loads CAF's middleman with `io_loop` as its backend.
void load_io_loop(caf::actor_system_config& cfg);

} // namespace mycelium::transports
