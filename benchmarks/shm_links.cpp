// mycelium-bench-shm: shared-memory links between two processes, against the
// same ring without the bus, Boost.Interprocess message queues and CAF remote
// actors (BASP over TCP), all measured in the same run.
//
// Every measurement uses two real processes: this program (side A, the
// driver) re-executes itself (/proc/self/exe) with the hidden option
// `--role peer` for side B, which hosts every far end at once:
//   - one shared-memory segment (transports/shm/segment.hpp, the rings the
//     link uses) with an echo thread on its incoming ring: the raw ring,
//   - per wait mode (busy_poll, spin_then_block) a mycelium node with a
//     `far` service (answers `ping` with `pong`, counts `tick` streams) and
//     a listening shm link, and one more node whose far service also stamps
//     the pong with the time its handler ran (the breakdown below),
//   - two Boost.Interprocess message queues (A -> B, B -> A) with an echo
//     thread,
//   - a plain CAF actor published with `middleman().publish` (BASP).
// When A is done with it (also after an error) A closes the child's stdin
// (the child removes its segment and queues and exits at EOF), then kills
// (SIGKILL) and reaps it if it is still there after 2 s; SIGINT/SIGTERM in A
// kill it at once, and it dies with A in any case (PR_SET_PDEATHSIG). Either
// way A finally removes whatever B left under /dev/shm (names carry B's pid).
//
//  1. Round-trip latency. Per payload size, every path runs a closed-loop
//     ping-pong: A sends ping{seq, payload}, B answers pong{seq, payload}, A
//     times the round trip and sends the next ping.
//       raw-busy    the raw ring: A writes the ping into its outgoing ring
//                   (ring_writer reserve / memcpy / commit), B's echo thread
//                   busy-polls its incoming ring, copies the frame into the
//                   other ring; A busy-polls for it and copies it out
//       raw-hybrid  same, both ends wait with spin_then_block (spin
//                   `--spin-us`, then a futex; producers call
//                   notify_consumer after each commit)
//       bus-busy    A: a service publishes ping, its pong handler records the
//                   RTT and publishes the next ping; B: a service answers ping
//                   with pong; an shm link with wait busy_poll on both sides
//       bus-hybrid  same with wait spin_then_block on both sides
//       bipc        Boost.Interprocess message_queue, blocking receive
//       bipc-spin   same, both ends spin on try_receive
//       caf         plain CAF actors over BASP (TCP loopback)
//     After a warm-up, the paths alternate in rounds (order rotated every
//     round). A bus path connects a fresh link for each chunk of round trips
//     (then warms it up for one pass over the ring) and closes it after, so
//     that no busy-polling I/O loop runs while other paths are measured; the
//     raw and Boost echo threads park (futex / blocking receive) likewise.
//     ALL LATENCIES ARE ROUND TRIPS.
//  2. One-way throughput, 64-byte payloads. raw-*: A writes N frames into
//     the ring as fast as it has room, B takes and copies them out, counts,
//     and answers with the count. bus-*: a service publishes N `tick`s as
//     fast as the link admits (overflow policy block); B's service counts
//     them and publishes an `ack`; the time runs from the first publish to
//     the ack. caf: an actor sends N ticks over BASP (no flow control).
//  3. Breakdown (diagnostic): a 16 B bus ping-pong per wait mode in which B
//     writes the TSC reading of its handler start into the pong, so that A
//     can split each round trip into A -> B and B -> A (and time its own
//     `publish` call). The TSC is one clock for both processes here.
//  4. Segment set-up, in A alone before the scenarios: `segment` times
//     shm::segment::create, attach and both destructors per cycle; `posix`,
//     its raw baseline, makes the same system calls (shm_open, ftruncate,
//     mmap, munmap, shm_unlink) without the class. The two alternate in
//     rounds.
//
// Beside each path's figures the program reads, from /proc, the context
// switches and the on-CPU time of every thread of BOTH processes during the
// timed chunks and reports them per round trip (per message for throughput).
//
// Scenarios: each `config[/threads]@pin` (CAF scheduler settings, worker
// count, CPU pinning of the two processes) gets its own peer process and its
// own actor systems; `--io-sched` changes the scheduling of both middleman
// I/O threads. See docs/benchmarks.md ("Shared memory").

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/version.hpp>
#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/format.h>

#include "bench_clock.hpp"
#include "bench_messages.hpp"
#include "bench_pingpong.hpp"
#include "bench_report.hpp"
#include "bench_sched.hpp"
#include "bench_two_process.hpp"
#include "child_process.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/shm/ring_waiter.hpp"
#include "mycelium/transports/shm/segment.hpp"
#include "mycelium/detail/cpu_relax.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "mycelium/transports/shm/spsc_ring.hpp"
#include "mycelium/wire/frame_header.hpp"

#ifndef MYCELIUM_BENCH_RESULTS_DIR
#define MYCELIUM_BENCH_RESULTS_DIR "benchmarks/results"
#endif

namespace {

using namespace mycelium::bench; // clock, report, scheduler, process and actor helpers

namespace mb = mbench;
namespace mt = mycelium::transports;
namespace shm = mycelium::transports::shm;
namespace bip = boost::interprocess;
using namespace std::chrono_literals;

// -- options ------------------------------------------------------------------------

struct options {
  std::vector<size_t> sizes{16, 64, 256, 1024, 4096, 16384, 65536};
  size_t rounds = 10;
  size_t roundtrips = 100000;      // timed round trips per path, sizes <= 1 KiB
  size_t roundtrips_large = 20000; // timed round trips per path, sizes > 1 KiB
  size_t warmup = 2000;            // per path and size, before the rounds
  size_t chunk_warmup = 200;       // per chunk (bus: at least one ring pass)
  std::vector<std::string> paths{"raw-busy", "bus-busy", "raw-hybrid", "bus-hybrid",
                                 "bipc", "bipc-spin", "caf"};
  std::vector<std::string> scenarios{"wake/1@split", "wake/2@none"};
  size_t threads = 1;
  int64_t ws_aggressive_polls = 100000;
  int64_t ws_moderate_sleep_ns = 0;
  int64_t ws_relaxed_sleep_us = 100;
  int64_t ws_spin_polls = 20000;
  int64_t max_throughput = -1; // scheduler.max-throughput; -1: CAF's default (unlimited)
  std::string io_sched = "normal"; // the middleman I/O thread: normal | nice:N | idle
  std::string placement = "pool";  // where the bus paths' services run: pool | loop
  uint64_t ring_capacity = 256 * 1024;
  uint32_t spin_us = 100;
  size_t mq_depth = 16;
  size_t tput_msgs = 2000000;
  size_t tput_caf_msgs = 300000;
  size_t tput_rounds = 5;
  size_t tput_payload = 64;
  std::vector<std::string> tput_paths{"raw-busy", "bus-busy", "raw-hybrid", "bus-hybrid",
                                      "caf"};
  int64_t block_timeout_ms = 100;
  size_t diag_roundtrips = 20000; // stamped round trips per mode; 0: no breakdown
  size_t setup_cycles = 1000;     // segment create / attach / destroy cycles per path; 0: none
  bool setup_only = false;        // only the segment set-up, no scenario
  bool skip_latency = false;
  bool skip_tput = false;
  bool quick = false;
  std::string timer = "tsc";
  std::string json = MYCELIUM_BENCH_RESULTS_DIR "/shm.json";
  // hidden: the peer process
  std::string role;
  std::string config = "wake";
  std::string dir;
  int cpu = -1;
};

mycelium::placement placement_of(const options& opt) {
  mycelium::placement p = mycelium::placement::pool;
  if (auto err = mycelium::parse_placement(opt.placement, p))
    throw bench_error(mycelium::render(err));
  return p;
}

size_t roundtrips_for(const options& opt, size_t size) {
  return size <= 1024 ? opt.roundtrips : opt.roundtrips_large;
}

/// `config[/threads]@pin`: CAF scheduler settings, worker threads, pinning.
struct scenario {
  std::string config; // default | wake | spin | tuned
  size_t threads = 0; // scheduler.max-threads of both processes
  std::string pin;    // none | split | same
  std::string name() const { return config + "/" + std::to_string(threads) + "@" + pin; }
};

scenario parse_scenario(const std::string& s, size_t default_threads) {
  auto at = s.find('@');
  auto head = s.substr(0, at);
  scenario sc;
  sc.pin = at == std::string::npos ? "none" : s.substr(at + 1);
  auto slash = head.find('/');
  sc.config = head.substr(0, slash);
  sc.threads = default_threads;
  if (slash != std::string::npos) {
    try {
      sc.threads = std::stoul(head.substr(slash + 1));
    } catch (const std::exception&) {
      sc.threads = 0;
    }
    if (sc.threads == 0)
      throw bench_error("scenario '" + s + "': threads must be a positive number");
  }
  if (sc.config != "default" && sc.config != "wake" && sc.config != "spin"
      && sc.config != "tuned")
    throw bench_error("scenario '" + s + "': config must be default, wake, spin or tuned");
  if (sc.pin != "none" && sc.pin != "split" && sc.pin != "same")
    throw bench_error("scenario '" + s + "': pin must be none, split or same");
  return sc;
}

// -- actor system configuration --------------------------------------------------------

void configure(caf::actor_system_config& cfg, const options& opt, const std::string& config,
               size_t threads) {
  mt::load_io_loop(cfg); // CAF's middleman with Mycelium's I/O loop
  mb::add_message_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  cfg.set("scheduler.policy", caf::atom("stealing"));
  cfg.set("scheduler.max-threads", static_cast<int64_t>(threads));
  if (opt.max_throughput > 0)
    cfg.set("scheduler.max-throughput", opt.max_throughput);
  if (config == "tuned") {
    // Spin instead of sleeping 50 us between polls (see inprocess_latency.cpp).
    cfg.set("work-stealing.aggressive-poll-attempts", opt.ws_aggressive_polls);
    cfg.set("work-stealing.moderate-sleep-duration", caf::timespan{opt.ws_moderate_sleep_ns});
    cfg.set("work-stealing.relaxed-sleep-duration",
            caf::timespan{opt.ws_relaxed_sleep_us * 1000});
  } else if (config == "wake") {
    // Skip the moderate phase (polls with 50 us sleeps that new work does not
    // interrupt): after the aggressive polls a worker waits on its condition
    // variable, which external_enqueue notifies.
    cfg.set("work-stealing.moderate-poll-attempts", int64_t{0});
  } else if (config == "spin") {
    // Like wake, but poll longer before waiting on the condition variable.
    cfg.set("work-stealing.aggressive-poll-attempts", opt.ws_spin_polls);
    cfg.set("work-stealing.moderate-poll-attempts", int64_t{0});
  }
}

/// Applies `--io-sched` to the middleman's I/O thread of `sys` (from that
/// thread: the function is posted to the multiplexer). "normal" leaves it
/// alone, "nice:N" sets its nice value, "idle" makes it SCHED_IDLE.
void tune_io_thread(caf::actor_system& sys, const std::string& how) {
  if (how == "normal")
    return;
  auto done = std::make_shared<std::promise<std::string>>();
  auto f = done->get_future();
  sys.middleman().backend().post([done, how] {
    std::string err;
    auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    if (how == "idle") {
      sched_param p{};
      if (::sched_setscheduler(0, SCHED_IDLE, &p) != 0)
        err = std::string{"sched_setscheduler(SCHED_IDLE): "} + std::strerror(errno);
    } else if (how.rfind("nice:", 0) == 0) {
      if (::setpriority(PRIO_PROCESS, tid, std::stoi(how.substr(5))) != 0)
        err = std::string{"setpriority: "} + std::strerror(errno);
    } else {
      err = "unknown --io-sched '" + how + "': use normal, nice:N or idle";
    }
    done->set_value(err);
  });
  if (f.wait_for(5s) != std::future_status::ready)
    throw bench_error("--io-sched: the I/O thread did not run the change within 5 s");
  if (auto err = f.get(); !err.empty())
    throw bench_error("--io-sched " + how + ": " + err);
}

std::string sched_text(const sched_info& s) {
  return fmt::format("scheduler.policy={} max-threads={} (workers={}) max-throughput={} "
                     "middleman.workers={} "
                     "work-stealing: aggressive-poll-attempts={} moderate-poll-attempts={} "
                     "moderate-sleep-duration={} ns relaxed-sleep-duration={} ns",
                     s.policy, s.max_threads, s.workers,
                     s.max_throughput < 0 ? std::string{"unlimited"}
                                          : std::to_string(s.max_throughput),
                     s.mm_workers, s.aggressive_poll_attempts, s.moderate_poll_attempts,
                     s.moderate_sleep_ns, s.relaxed_sleep_ns);
}

// -- the raw ring and Boost protocol -------------------------------------------------

/// Header of every raw-ring and Boost message queue frame (a ping, a pong or
/// a command), followed by `len` payload bytes. Throughput streams send
/// bare payloads after a `cmd_stream` frame.
struct raw_msg {
  uint64_t seq; ///< round trip number; cmd_stream / cmd_ack: message count
  uint32_t len; ///< payload bytes after the header
  uint16_t cmd; ///< raw_cmd
  uint16_t cpu; ///< the echo: CPU the peer's thread ran on
};
static_assert(sizeof(raw_msg) == 16);

enum raw_cmd : uint16_t {
  cmd_echo = 0,   ///< answer with the same frame
  cmd_busy = 1,   ///< wait by busy-polling from now on (Boost: spin on try_receive)
  cmd_hybrid = 2, ///< wait with spin_then_block from now on
  cmd_park = 3,   ///< wait blocking (futex / receive) from now on
  cmd_stream = 4, ///< `seq` bare payload frames follow; answer with cmd_ack
  cmd_ack = 5,    ///< the count of a stream (`seq`)
};

mt::wait_mode mode_of(const std::string& path) {
  return path.find("busy") != std::string::npos ? mt::wait_mode::busy_poll
                                                : mt::wait_mode::spin_then_block;
}

/// Reserves `n` bytes in `w`, spinning while the ring is full; throws when
/// it stays full for 10 s (the consumer is gone).
uint8_t* reserve_spin(shm::ring_writer& w, size_t n) {
  uint8_t* dst = nullptr;
  int64_t since = 0; // first clock check of this wait
  for (uint64_t k = 1;; ++k) {
    auto st = w.reserve(n, dst);
    if (st == shm::ring_status::ok)
      return dst;
    if (st != shm::ring_status::back_pressured)
      throw bench_error(fmt::format("raw ring: reserve({}) failed ({})", n,
                                    st == shm::ring_status::too_large ? "too large" : "corrupt"));
    mycelium::detail::cpu_relax();
    if ((k & 0xfffff) != 0)
      continue;
    auto t = now_ns();
    if (since == 0)
      since = t;
    else if (t - since > 10000000000)
      throw bench_error("raw ring: full for 10 s (the peer does not consume)");
  }
}

/// Ring and Boost object names of peer `pid` (all under /dev/shm, all
/// starting with "mycelium-bench-<pid>-" so that the driver can sweep them).
std::string peer_prefix(pid_t pid) {
  return fmt::format("mycelium-bench-{}-", pid);
}

// -- peer (side B) ---------------------------------------------------------------------

/// B's raw ring thread: echoes pings, switches wait modes on command and
/// counts throughput streams. Runs until the process exits.
void raw_peer_loop(shm::segment* seg, uint32_t spin_us) {
  auto reader = seg->reader();
  auto writer = seg->writer();
  auto& in = seg->incoming();
  auto& out = seg->outgoing();
  auto mode = mt::wait_mode::block;
  std::vector<uint8_t> sink(65536 + sizeof(raw_msg));
  auto next = [&](const uint8_t*& f, size_t& n, std::chrono::nanoseconds timeout) {
    if (!shm::wait_for_data(reader, in, mode, std::chrono::microseconds{spin_us}, timeout))
      return false;
    auto st = reader.peek(f, n);
    if (st == shm::ring_status::empty)
      return false;
    if (st != shm::ring_status::ok)
      throw bench_error("peer: the raw ring is corrupt");
    return true;
  };
  try {
    for (;;) {
      const uint8_t* f = nullptr;
      size_t n = 0;
      if (!next(f, n, 200ms))
        continue;
      raw_msg h{};
      if (n < sizeof(h))
        throw bench_error("peer: short raw frame");
      std::memcpy(&h, f, sizeof(h));
      switch (h.cmd) {
        case cmd_echo: {
          auto* dst = reserve_spin(writer, n);
          std::memcpy(dst, f, n);
          h.cpu = static_cast<uint16_t>(::sched_getcpu());
          std::memcpy(dst, &h, sizeof(h));
          writer.commit();
          if (mode != mt::wait_mode::busy_poll)
            shm::notify_consumer(out);
          reader.release();
          break;
        }
        case cmd_busy:
        case cmd_hybrid:
        case cmd_park:
          mode = h.cmd == cmd_busy     ? mt::wait_mode::busy_poll
                 : h.cmd == cmd_hybrid ? mt::wait_mode::spin_then_block
                                       : mt::wait_mode::block;
          reader.release();
          break;
        case cmd_stream: {
          reader.release();
          uint64_t count = 0;
          uint8_t touch = 0;
          while (count < h.seq) {
            if (!next(f, n, 10s))
              throw bench_error("peer: raw stream stalled");
            std::memcpy(sink.data(), f, std::min(n, sink.size())); // take the message out
            touch = static_cast<uint8_t>(touch + sink[0]);
            reader.release();
            ++count;
          }
          raw_msg ack{count, 0, cmd_ack, touch};
          auto* dst = reserve_spin(writer, sizeof(ack));
          std::memcpy(dst, &ack, sizeof(ack));
          writer.commit();
          shm::notify_consumer(out);
          break;
        }
        default:
          throw bench_error(fmt::format("peer: unknown raw command {}", h.cmd));
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "peer raw ring: {}\n", e.what());
  }
}

/// B's Boost.Interprocess echo: blocking receive, or spinning on
/// try_receive after cmd_busy until cmd_park.
void bipc_peer_loop(bip::message_queue* in, bip::message_queue* out) {
  try {
    std::vector<uint8_t> buf(in->get_max_msg_size());
    bool spin = false;
    for (;;) {
      bip::message_queue::size_type got = 0;
      unsigned prio = 0;
      if (spin) {
        while (!in->try_receive(buf.data(), buf.size(), got, prio))
          mycelium::detail::cpu_relax();
      } else {
        in->receive(buf.data(), buf.size(), got, prio);
      }
      raw_msg h{};
      if (got < sizeof(h))
        throw bench_error("peer: short Boost message");
      std::memcpy(&h, buf.data(), sizeof(h));
      if (h.cmd == cmd_echo) {
        h.cpu = static_cast<uint16_t>(::sched_getcpu());
        std::memcpy(buf.data(), &h, sizeof(h));
        out->send(buf.data(), got, 0);
      } else {
        spin = h.cmd == cmd_busy;
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "peer Boost echo: {}\n", e.what());
  }
}

/// Diagnostic far end (the breakdown): answers ping with pong like
/// far_service, and puts the TSC reading taken when its handler started into
/// the first 8 bytes of the pong's payload (the TSC is the same clock in
/// both processes: invariant, one VM).
class stamp_far_service : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    subscribe<mb::ping>([this](const mb::ping& x) {
      auto t_in = ticks();
      mb::pong y{x.seq, x.payload};
      if (y.payload.size() >= sizeof(t_in))
        std::memcpy(y.payload.data(), &t_in, sizeof(t_in));
      publish(std::move(y));
    });
  }
};

/// Largest payload the links accept: the largest frame a ring of
/// `capacity` bytes takes, minus the frame header.
uint32_t link_max_payload(uint64_t capacity) {
  return static_cast<uint32_t>(shm::max_frame_for(capacity) - mycelium::wire::frame_header::size);
}

mt::link_config make_link_config(const options& opt, mt::wait_mode mode) {
  mt::link_config c;
  c.name = mode == mt::wait_mode::busy_poll ? "bench-shm-busy" : "bench-shm-hybrid";
  c.kind = mt::link_kind::shm;
  c.wait = mode;
  c.spin = std::chrono::microseconds{opt.spin_us};
  c.ring_capacity = opt.ring_capacity;
  c.max_payload = link_max_payload(opt.ring_capacity);
  c.overflow = mycelium::overflow_policy::block;
  c.block_timeout = std::chrono::milliseconds(opt.block_timeout_ms);
  return c;
}

int run_peer(const options& opt) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGPIPE, SIG_IGN);
  if (opt.dir.empty())
    throw bench_error("--role peer needs --dir");
  pin_self(opt.cpu);
  if (opt.timer == "tsc" && cpu_has_invariant_tsc())
    g_tsc = true; // raw TSC readings for the breakdown (the driver converts them)
  auto prefix = peer_prefix(::getpid());
  // The raw ring: the same segment and ring classes as the link.
  auto seg = shm::segment::create(prefix + "raw", opt.ring_capacity, mb::descriptor().digest);
  if (!seg)
    throw bench_error("peer: cannot create the raw segment: " + mycelium::render(seg.error()));
  std::string ready = "ready raw=" + seg->name();
  // Boost.Interprocess queues (removed at exit, and by the driver).
  auto mq_ab = prefix + "mq-ab", mq_ba = prefix + "mq-ba";
  bip::message_queue::remove(mq_ab.c_str());
  bip::message_queue::remove(mq_ba.c_str());
  auto max_msg = sizeof(raw_msg) + 65536;
  bip::message_queue qab{bip::create_only, mq_ab.c_str(), opt.mq_depth, max_msg};
  bip::message_queue qba{bip::create_only, mq_ba.c_str(), opt.mq_depth, max_msg};
  ready += " mq_ab=" + mq_ab + " mq_ba=" + mq_ba;
  auto cleanup = [&] {
    seg->unlink();
    bip::message_queue::remove(mq_ab.c_str());
    bip::message_queue::remove(mq_ba.c_str());
  };
  try {
    caf::actor_system_config cfg;
    configure(cfg, opt, opt.config, opt.threads);
    caf::actor_system sys{cfg};
    tune_io_thread(sys, opt.io_sched);
    // One node + far service + listening link per wait mode, and the same
    // with the stamping far service for the breakdown.
    std::vector<std::unique_ptr<mycelium::node>> nodes;
    std::vector<mt::link> links;
    for (bool diag : {false, true})
      for (auto mode : {mt::wait_mode::busy_poll, mt::wait_mode::spin_then_block}) {
        std::string key = std::string{diag ? "diag-" : ""}
                          + (mode == mt::wait_mode::busy_poll ? "busy" : "hybrid");
        auto& n = *nodes.emplace_back(std::make_unique<mycelium::node>(sys, "peer-" + key));
        auto s = n.start(
          [diag](caf::actor_system& s, mycelium::service_context ctx) {
            return diag ? s.spawn<stamp_far_service>(std::move(ctx))
                        : s.spawn<far_service>(std::move(ctx));
          },
          "far", {}, {}, placement_of(opt));
        if (!s)
          throw bench_error("peer: cannot start far service: " + mycelium::render(s.error()));
        auto lc = make_link_config(opt, mode);
        lc.role = mt::link_role::listen;
        lc.address = opt.dir + "/" + key + ".sock";
        auto l = mt::link::start(n, mb::descriptor(), lc);
        if (!l)
          throw bench_error("peer: cannot start link: " + mycelium::render(l.error()));
        links.push_back(*l);
        ready += " " + key + "=" + lc.address;
      }
    // CAF BASP
    auto far = sys.spawn(caf_far);
    auto basp = sys.middleman().publish(far, 0, "127.0.0.1");
    if (!basp)
      throw bench_error("peer: middleman().publish failed: " + sys.render(basp.error()));
    ready += fmt::format(" basp={}", *basp);
    std::thread{raw_peer_loop, &*seg, opt.spin_us}.detach();
    std::thread{bipc_peer_loop, &qab, &qba}.detach();
    std::cout << ready << std::endl;
    // Until the driver closes our stdin (or dies: PR_SET_PDEATHSIG).
    char buf[64];
    while (::read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
    }
    cleanup();
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(0); // no teardown: the echo threads sit in their loops
  } catch (...) {
    cleanup();
    throw;
  }
}

// -- driver side: cleanup ----------------------------------------------------------------

using mycelium::test_support::child_process;
using mycelium::test_support::temp_dir;

/// Removes every /dev/shm entry whose name starts with one of the prefixes.
/// Not async-signal-safe: for the normal and the exception paths.
void sweep_dev_shm(const std::vector<std::string>& prefixes) {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
    auto name = e.path().filename().string();
    for (auto& p : prefixes)
      if (name.rfind(p, 0) == 0)
        std::filesystem::remove(e.path(), ec);
  }
}

/// On destruction (after the peer was reaped: declare it before the
/// child_process), removes what the peer may have left under /dev/shm: its
/// raw segment and queues ("mycelium-bench-<pid>-") and link segments that
/// a crash caught before both sides had mapped them ("mycelium-<pid>-").
class dev_shm_sweeper {
public:
  void watch(pid_t pid) {
    prefixes_.push_back(peer_prefix(pid));
    prefixes_.push_back(fmt::format("mycelium-{}-", pid));
  }
  ~dev_shm_sweeper() {
    sweep_dev_shm(prefixes_);
  }

private:
  std::vector<std::string> prefixes_;
};

/// Sends this process's stderr to a file while it lives: every bus chunk
/// connects a fresh link, and each link logs its connection at info level.
/// `lines_with` reads the file back; if the scope is left by an exception,
/// the file's last lines are copied to the real stderr.
class stderr_to_file {
public:
  explicit stderr_to_file(std::string path) : path_(std::move(path)) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (saved_ < 0 || fd < 0)
      throw bench_error("cannot redirect stderr to " + path_ + ": " + std::strerror(errno));
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }

  ~stderr_to_file() {
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    if (std::uncaught_exceptions() > 0) {
      auto all = lines_with("");
      auto from = all.size() > 20 ? all.size() - 20 : 0;
      for (auto i = from; i < all.size(); ++i)
        fmt::print(stderr, "{}\n", all[i]);
    }
  }

  stderr_to_file(const stderr_to_file&) = delete;
  stderr_to_file& operator=(const stderr_to_file&) = delete;

  /// The lines written so far that contain `what`.
  std::vector<std::string> lines_with(const std::string& what) const {
    std::fflush(stderr);
    std::ifstream in{path_};
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);)
      if (l.find(what) != std::string::npos)
        out.push_back(l);
    return out;
  }

private:
  std::string path_;
  int saved_ = -1;
};

// -- driver side: the raw ring ------------------------------------------------------------

/// A's end of the raw ring: the segment B created, and the one writer and
/// one reader that every raw path and the raw throughput share.
class raw_ring_end {
public:
  explicit raw_ring_end(const std::string& name, uint32_t spin_us)
    : spin_(std::chrono::microseconds{spin_us}) {
    auto s = shm::segment::attach(name, mb::descriptor().digest);
    if (!s)
      throw bench_error("cannot attach the raw segment: " + mycelium::render(s.error()));
    seg_ = std::move(*s);
    seg_.unlink(); // both sides have it mapped: nothing can be left behind
    writer_ = seg_.writer();
    reader_ = seg_.reader();
  }

  /// Sends a command frame and wakes B if it sleeps.
  void command(raw_cmd cmd, uint64_t seq = 0) {
    raw_msg h{seq, 0, cmd, 0};
    auto* dst = reserve_spin(writer_, sizeof(h));
    std::memcpy(dst, &h, sizeof(h));
    writer_.commit();
    shm::notify_consumer(seg_.outgoing());
  }

  /// Waits for the next frame from B in `mode`; throws after 10 s.
  void await(mt::wait_mode mode, const uint8_t*& f, size_t& n) {
    for (;;) {
      if (!shm::wait_for_data(reader_, seg_.incoming(), mode, spin_, 10s))
        throw bench_error("raw ring: no answer from the peer within 10 s");
      auto st = reader_.peek(f, n);
      if (st == shm::ring_status::ok)
        return;
      if (st != shm::ring_status::empty)
        throw bench_error("raw ring: corrupt");
    }
  }

  shm::ring_writer& writer() { return writer_; }
  shm::ring_reader& reader() { return reader_; }
  shm::ring_control& outgoing() { return seg_.outgoing(); }

private:
  std::chrono::nanoseconds spin_;
  shm::segment seg_;
  shm::ring_writer writer_;
  shm::ring_reader reader_;
};

class raw_ring_rtt final : public rtt_path {
public:
  raw_ring_rtt(std::string name, raw_ring_end& end, mt::wait_mode mode)
    : rtt_path(std::move(name)), end_(end), mode_(mode) {
  }

  void set_payload(const std::vector<uint8_t>& payload) override {
    out_.resize(sizeof(raw_msg) + payload.size());
    std::memcpy(out_.data() + sizeof(raw_msg), payload.data(), payload.size());
    in_.resize(out_.size());
  }

  void begin_chunk() override {
    end_.command(mode_ == mt::wait_mode::busy_poll ? cmd_busy : cmd_hybrid);
  }

  void end_chunk() override {
    end_.command(cmd_park);
  }

  int64_t run(size_t n, std::vector<uint32_t>* out) override {
    auto begin = now_ns();
    auto len = static_cast<uint32_t>(out_.size() - sizeof(raw_msg));
    bool notify = mode_ != mt::wait_mode::busy_poll;
    auto& w = end_.writer();
    for (uint64_t i = 0; i < n; ++i) {
      raw_msg h{i, len, cmd_echo, 0};
      std::memcpy(out_.data(), &h, sizeof(h));
      auto t0 = ticks();
      auto* dst = reserve_spin(w, out_.size());
      std::memcpy(dst, out_.data(), out_.size());
      w.commit();
      if (notify)
        shm::notify_consumer(end_.outgoing());
      const uint8_t* f = nullptr;
      size_t got = 0;
      end_.await(mode_, f, got);
      if (got != in_.size())
        throw bench_error(fmt::format("{}: answer of {} bytes, expected {}", name(), got,
                                      in_.size()));
      std::memcpy(in_.data(), f, got); // take the answer out of the ring
      end_.reader().release();
      auto t1 = ticks();
      raw_msg r;
      std::memcpy(&r, in_.data(), sizeof(r));
      if (r.seq != i || r.len != len || r.cmd != cmd_echo)
        throw bench_error(name() + ": wrong answer");
      record(out, t1 - t0, r.cpu);
    }
    return now_ns() - begin;
  }

private:
  raw_ring_end& end_;
  mt::wait_mode mode_;
  std::vector<uint8_t> out_, in_;
};

// -- driver side: Boost.Interprocess ------------------------------------------------------

class bipc_rtt final : public rtt_path {
public:
  bipc_rtt(std::string name, bip::message_queue& ab, bip::message_queue& ba, bool spin)
    : rtt_path(std::move(name)), ab_(ab), ba_(ba), spin_(spin) {
  }

  void set_payload(const std::vector<uint8_t>& payload) override {
    out_.resize(sizeof(raw_msg) + payload.size());
    std::memcpy(out_.data() + sizeof(raw_msg), payload.data(), payload.size());
    in_.resize(ba_.get_max_msg_size());
  }

  void begin_chunk() override {
    command(spin_ ? cmd_busy : cmd_park);
  }

  void end_chunk() override {
    command(cmd_park);
  }

  int64_t run(size_t n, std::vector<uint32_t>* out) override {
    auto begin = now_ns();
    auto len = static_cast<uint32_t>(out_.size() - sizeof(raw_msg));
    for (uint64_t i = 0; i < n; ++i) {
      raw_msg h{i, len, cmd_echo, 0};
      std::memcpy(out_.data(), &h, sizeof(h));
      auto t0 = ticks();
      ab_.send(out_.data(), out_.size(), 0);
      bip::message_queue::size_type got = 0;
      unsigned prio = 0;
      if (spin_) {
        int64_t since = 0; // first clock check of this wait
        for (uint64_t k = 1; !ba_.try_receive(in_.data(), in_.size(), got, prio); ++k) {
          mycelium::detail::cpu_relax();
          if ((k & 0xfffff) != 0)
            continue;
          auto t = now_ns();
          if (since == 0)
            since = t;
          else if (t - since > 10000000000)
            throw bench_error(name() + ": no answer from the peer within 10 s");
        }
      } else if (!ba_.timed_receive(in_.data(), in_.size(), got, prio,
                                    boost::posix_time::microsec_clock::universal_time()
                                      + boost::posix_time::seconds(10))) {
        throw bench_error(name() + ": no answer from the peer within 10 s");
      }
      auto t1 = ticks();
      raw_msg r;
      std::memcpy(&r, in_.data(), sizeof(r));
      if (got != out_.size() || r.seq != i || r.len != len)
        throw bench_error(name() + ": wrong answer");
      record(out, t1 - t0, r.cpu);
    }
    return now_ns() - begin;
  }

private:
  void command(raw_cmd cmd) {
    raw_msg h{0, 0, cmd, 0};
    ab_.send(&h, sizeof(h), 0);
  }

  bip::message_queue& ab_;
  bip::message_queue& ba_;
  bool spin_;
  std::vector<uint8_t> out_, in_;
};

// -- driver side: the bus over an shm link -------------------------------------------------

/// A's node with the driver service, and the link it connects to B for one
/// chunk at a time (busy_poll or spin_then_block).
class bus_end {
public:
  /// `paths`: B's socket path per wait mode ("busy", "hybrid"); `service`:
  /// the driver's service (default: driver_service on this end's jobs).
  bus_end(caf::actor_system& sys, const options& opt, std::map<std::string, std::string> paths,
          const std::string& node_name = "driver",
          mycelium::service_factory service = nullptr,
          std::vector<uint32_t> peer_types = {mb::ping::type_id, mb::tick::type_id,
                                              mb::link_tput_begin::type_id})
    : opt_(opt), paths_(std::move(paths)), peer_types_(std::move(peer_types)),
      node_(sys, node_name) {
    if (!service)
      service = [lj = &lj_, tj = &tj_](caf::actor_system& s, mycelium::service_context ctx) {
        return s.spawn<driver_service>(std::move(ctx), lj, tj);
      };
    auto s = node_.start(std::move(service), "driver", {}, {}, placement_of(opt));
    if (!s)
      throw bench_error("cannot start the driver service: " + mycelium::render(s.error()));
  }

  ~bus_end() {
    disconnect();
    node_.stop();
  }

  bus_end(const bus_end&) = delete;
  bus_end& operator=(const bus_end&) = delete;

  /// Connects a fresh link in wait mode `mode` and waits until it is up and
  /// the peer's subscriptions (`peer_types`) have arrived.
  void connect(mt::wait_mode mode) {
    disconnect();
    auto lc = make_link_config(opt_, mode);
    lc.role = mt::link_role::connect;
    lc.address = paths_.at(mode == mt::wait_mode::busy_poll ? "busy" : "hybrid");
    auto l = mt::link::start(node_, mb::descriptor(), lc);
    if (!l)
      throw bench_error("cannot start the link: " + mycelium::render(l.error()));
    link_ = *l;
    if (!link_.await_up(10s))
      throw bench_error("link " + lc.endpoint() + " did not come up: "
                        + link_.stats().last_error);
    for (auto id : peer_types_)
      if (!link_.await_peer_interest(id, 10s))
        throw bench_error("the peer's interest did not arrive over " + lc.endpoint());
    ++connects_;
  }

  /// Closes the link (B's I/O loop stops polling its ring) and keeps its
  /// counters.
  void disconnect() {
    if (!link_)
      return;
    auto s = link_.stats();
    totals_.frames_sent += s.frames_sent;
    totals_.bytes_sent += s.bytes_sent;
    totals_.frames_received += s.frames_received;
    totals_.back_pressured += s.back_pressured;
    totals_.dropped_overflow += s.dropped_overflow;
    totals_.dropped_link_down += s.dropped_link_down;
    totals_.bad_frames += s.bad_frames;
    totals_.disconnects += s.disconnects;
    link_.stop();
    link_ = mt::link{};
  }

  lat_job& lat() { return lj_; }
  tput_job& tput() { return tj_; }
  mycelium::node& node() { return node_; }
  mt::link& link() { return link_; }
  /// Counters summed over every link closed so far.
  const mt::link_stats& totals() const { return totals_; }
  uint64_t connects() const { return connects_; }

private:
  const options& opt_;
  std::map<std::string, std::string> paths_;
  std::vector<uint32_t> peer_types_;
  lat_job lj_;
  tput_job tj_;
  mycelium::node node_;
  mt::link link_;
  mt::link_stats totals_;
  uint64_t connects_ = 0;
};

/// Waits for an actor-driven run over `link`. Fails fast, naming the
/// counters, when the link refused or lost a message or lost its peer (the
/// run could never finish), and after `limit` in any case.
void await_bus(std::future<void>& f, const mt::link& link, const std::string& what,
               std::chrono::seconds limit) {
  auto s0 = link.stats();
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (f.wait_for(100ms) != std::future_status::ready) {
    auto s = link.stats();
    if (s.back_pressured > s0.back_pressured || s.dropped_overflow > s0.dropped_overflow
        || s.dropped_link_down > s0.dropped_link_down || s.bad_frames > s0.bad_frames
        || s.disconnects > s0.disconnects)
      throw bench_error(fmt::format(
        "{}: the link lost messages (back_pressured +{}, dropped_overflow +{}, "
        "dropped_link_down +{}, bad_frames +{}, disconnects +{}; state {}, last error '{}')",
        what, s.back_pressured - s0.back_pressured, s.dropped_overflow - s0.dropped_overflow,
        s.dropped_link_down - s0.dropped_link_down, s.bad_frames - s0.bad_frames,
        s.disconnects - s0.disconnects, mt::to_string(s.state), s.last_error));
    if (std::chrono::steady_clock::now() >= deadline)
      throw bench_error(fmt::format("{}: no answer within {} s (link state {}, frames sent {}, "
                                    "received {})",
                                    what, limit.count(), mt::to_string(s.state), s.frames_sent,
                                    s.frames_received));
  }
}

/// Frames of a `size`-byte ping per pass over a ring of `capacity` bytes
/// (record header + frame header + TLV overhead, rounded up to 8).
size_t frames_per_ring_pass(uint64_t capacity, size_t size) {
  auto record = 8 + shm::align8(mycelium::wire::frame_header::size + size + 32);
  return static_cast<size_t>(capacity / record) + 1;
}

class shm_bus_rtt final : public rtt_path {
public:
  shm_bus_rtt(std::string name, bus_end& end, mt::wait_mode mode, uint64_t ring_capacity)
    : rtt_path(std::move(name)), end_(end), mode_(mode), ring_capacity_(ring_capacity) {
  }

  void set_payload(const std::vector<uint8_t>& payload) override {
    end_.lat().payload = payload;
  }

  /// A fresh link, warmed up for one pass over its ring (the first pass
  /// takes the page faults of the new segment).
  void begin_chunk() override {
    end_.connect(mode_);
    run(frames_per_ring_pass(ring_capacity_, end_.lat().payload.size()), nullptr);
  }

  void end_chunk() override {
    end_.disconnect();
  }

  int64_t run(size_t n, std::vector<uint32_t>* out) override {
    auto& j = end_.lat();
    j.n = n;
    j.samples = out;
    j.errors = 0;
    j.done = std::promise<void>{};
    auto f = j.done.get_future();
    if (end_.node().publish(mb::lat_start{round_++}) != mycelium::publish_status::ok)
      throw bench_error(name() + ": cannot start the pinger");
    await_bus(f, end_.link(), name(), 120s);
    if (j.errors)
      throw bench_error(fmt::format("{}: {} wrong answers or failed publishes", name(), j.errors));
    return j.elapsed_ns;
  }

private:
  bus_end& end_;
  mt::wait_mode mode_;
  uint64_t ring_capacity_;
  uint64_t round_ = 0;
};

// -- breakdown (diagnostic) ----------------------------------------------------------------

/// One stamped ping-pong run: TSC readings per round trip, filled by
/// stamp_driver_service, read by the driver after `done`.
struct stamp_job {
  uint64_t n = 0;
  std::vector<uint8_t> payload;
  /// t0 before publish(ping), after publish returned, B's handler start,
  /// A's pong handler start.
  std::vector<std::array<int64_t, 4>> stamps;
  uint64_t errors = 0;
  std::promise<void> done;
};

/// A's end of the breakdown: like driver_service's pinger, but it also
/// records when `publish` returned and B's stamp from the pong.
class stamp_driver_service : public mycelium::service {
public:
  stamp_driver_service(caf::actor_config& cfg, mycelium::service_context ctx, stamp_job* job)
    : service(cfg, std::move(ctx)), job_(job) {
  }

  void on_start() override {
    subscribe<mb::pong>([this](const mb::pong& x) {
      auto t_arr = ticks();
      int64_t t_b = 0;
      if (x.seq != i_ || x.payload.size() < sizeof(t_b))
        ++job_->errors;
      else
        std::memcpy(&t_b, x.payload.data(), sizeof(t_b));
      job_->stamps.push_back({t0_, t_pub_, t_b, t_arr});
      if (++i_ < job_->n)
        next();
      else
        job_->done.set_value();
    });
    subscribe<mb::lat_start>([this](const mb::lat_start&) {
      i_ = 0;
      next();
    });
  }

private:
  void next() {
    t0_ = ticks();
    if (publish(mb::ping{i_, job_->payload}) != mycelium::publish_status::ok)
      ++job_->errors;
    t_pub_ = ticks();
  }

  stamp_job* job_;
  uint64_t i_ = 0;
  int64_t t0_ = 0;
  int64_t t_pub_ = 0;
};

/// Medians and p99 of the parts of a bus round trip (ns).
struct breakdown {
  std::string mode;
  size_t round_trips = 0;
  double publish_med = 0, publish_p99 = 0; // A: the publish(ping) call
  double a_to_b_med = 0, a_to_b_p99 = 0;   // publish(ping) start -> B's handler start
  double b_to_a_med = 0, b_to_a_p99 = 0;   // B's handler start -> A's handler start
  double rtt_med = 0, rtt_p99 = 0;
};

/// Runs `opt.diag_roundtrips` stamped 16-byte round trips over a fresh link
/// per wait mode (the diag-* ends of the peer).
std::vector<breakdown> run_breakdown(const options& opt, caf::actor_system& sys,
                                     const std::map<std::string, std::string>& kv) {
  std::vector<breakdown> out;
  if (!g_tsc)
    return out; // needs the same clock in both processes
  stamp_job job;
  job.payload = make_payload(16);
  bus_end end{sys, opt, {{"busy", kv.at("diag-busy")}, {"hybrid", kv.at("diag-hybrid")}},
              "driver-diag",
              [&job](caf::actor_system& s, mycelium::service_context ctx) {
                return s.spawn<stamp_driver_service>(std::move(ctx), &job);
              },
              {mb::ping::type_id}};
  uint64_t round = 0;
  auto run = [&](size_t n) {
    job.n = n;
    job.errors = 0;
    job.stamps.clear();
    job.stamps.reserve(n);
    job.done = std::promise<void>{};
    auto f = job.done.get_future();
    end.node().publish(mb::lat_start{round++});
    await_bus(f, end.link(), "breakdown", 120s);
    if (job.errors)
      throw bench_error(fmt::format("breakdown: {} wrong answers", job.errors));
  };
  for (auto mode : {mt::wait_mode::busy_poll, mt::wait_mode::spin_then_block}) {
    end.connect(mode);
    run(std::max<size_t>(opt.warmup, frames_per_ring_pass(opt.ring_capacity, 16)));
    run(opt.diag_roundtrips);
    end.disconnect();
    std::vector<uint32_t> pub, ab, ba, rtt;
    for (auto& s : job.stamps) {
      pub.push_back(ticks_to_ns(s[1] - s[0]));
      ab.push_back(ticks_to_ns(s[2] - s[0]));
      ba.push_back(ticks_to_ns(s[3] - s[2]));
      rtt.push_back(ticks_to_ns(s[3] - s[0]));
    }
    for (auto* v : {&pub, &ab, &ba, &rtt})
      std::sort(v->begin(), v->end());
    breakdown b;
    b.mode = mode == mt::wait_mode::busy_poll ? "busy" : "hybrid";
    b.round_trips = rtt.size();
    b.publish_med = pct(pub, 0.5);
    b.publish_p99 = pct(pub, 0.99);
    b.a_to_b_med = pct(ab, 0.5);
    b.a_to_b_p99 = pct(ab, 0.99);
    b.b_to_a_med = pct(ba, 0.5);
    b.b_to_a_p99 = pct(ba, 0.99);
    b.rtt_med = pct(rtt, 0.5);
    b.rtt_p99 = pct(rtt, 0.99);
    fmt::print("  breakdown bus-{}: RTT {:.2f} us = A->B {:.2f} (publish call {:.2f}) + B->A "
               "{:.2f} (medians)\n",
               b.mode, b.rtt_med / 1000, b.a_to_b_med / 1000, b.publish_med / 1000,
               b.b_to_a_med / 1000);
    out.push_back(b);
  }
  std::fflush(stdout);
  return out;
}

// -- segment set-up ----------------------------------------------------------------------

/// `segment`: what a link does to set up and tear down its segment, less the
/// control-socket messages: `shm::segment::create` (side 0), `attach` (side
/// 1), then both destructors (the creator's removes the name).
class segment_setup {
public:
  segment_setup(std::string name, uint64_t capacity)
    : name_(std::move(name)), capacity_(capacity) {}

  void create() {
    a_ = check(shm::segment::create(name_, capacity_, mb::descriptor().digest), "create");
  }
  void attach() { b_ = check(shm::segment::attach(name_, mb::descriptor().digest), "attach"); }
  void destroy() {
    b_ = shm::segment{};
    a_ = shm::segment{};
  }

private:
  shm::segment check(caf::expected<shm::segment> s, const char* what) {
    if (!s)
      throw bench_error(fmt::format("segment set-up: {} {}: {}", what, name_,
                                    mycelium::render(s.error())));
    return std::move(*s);
  }

  std::string name_;
  uint64_t capacity_;
  shm::segment a_, b_;
};

/// `posix`, the raw baseline: the same system calls without the segment
/// class (the calls segment.cpp made before it used Boost.Interprocess):
/// shm_open (O_EXCL, 0600), fchmod, ftruncate, mmap, close and the header's
/// first writes; shm_open, fstat, mmap, close and a magic check; munmap
/// twice and shm_unlink.
class posix_setup {
public:
  posix_setup(std::string name, uint64_t capacity)
    : path_("/" + std::move(name)), capacity_(capacity), size_(shm::segment_size(capacity)) {}
  posix_setup(const posix_setup&) = delete;
  posix_setup& operator=(const posix_setup&) = delete;
  ~posix_setup() { destroy(); }

  void create() {
    int fd = ::shm_open(path_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
      throw bench_error("posix set-up: shm_open " + path_ + ": " + std::strerror(errno));
    ::fchmod(fd, 0600);
    if (::ftruncate(fd, static_cast<off_t>(size_)) != 0) {
      ::close(fd);
      throw bench_error("posix set-up: ftruncate: " + std::string{std::strerror(errno)});
    }
    a_ = map(fd, size_);
    auto* hdr = new (a_) shm::segment_header{};
    new (static_cast<uint8_t*>(a_) + shm::ring_offset(capacity_, 0)) shm::ring_control{};
    new (static_cast<uint8_t*>(a_) + shm::ring_offset(capacity_, 1)) shm::ring_control{};
    hdr->magic = shm::segment_magic;
    hdr->capacity = capacity_;
    hdr->state.store(static_cast<uint32_t>(shm::segment_state::ready),
                     std::memory_order_release);
  }

  void attach() {
    int fd = ::shm_open(path_.c_str(), O_RDWR | O_CLOEXEC, 0);
    struct stat st;
    if (fd < 0 || ::fstat(fd, &st) != 0)
      throw bench_error("posix set-up: attach " + path_ + ": " + std::strerror(errno));
    b_size_ = static_cast<size_t>(st.st_size);
    b_ = map(fd, b_size_);
    if (static_cast<shm::segment_header*>(b_)->magic != shm::segment_magic)
      throw bench_error("posix set-up: bad magic");
  }

  void destroy() {
    if (b_ != nullptr)
      ::munmap(b_, b_size_);
    if (a_ != nullptr) {
      ::munmap(a_, size_);
      ::shm_unlink(path_.c_str());
    }
    a_ = b_ = nullptr;
  }

private:
  /// Maps `fd` (closed here) read-write and shared.
  static void* map(int fd, size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED)
      throw bench_error("posix set-up: mmap: " + std::string{std::strerror(errno)});
    return p;
  }

  std::string path_;
  uint64_t capacity_;
  size_t size_;
  size_t b_size_ = 0;
  void* a_ = nullptr;
  void* b_ = nullptr;
};

/// One set-up path's cycles: each phase and the whole cycle (ns).
struct setup_stats {
  std::string path;
  rtt_stats create, attach, destroy, cycle;
};

/// Runs `cycles` create / attach / destroy cycles of `p`, appending each
/// phase's time (ns).
template <class Path>
void time_setup(Path& p, size_t cycles, std::array<std::vector<uint32_t>, 4>& out) {
  for (size_t i = 0; i < cycles; ++i) {
    auto t0 = now_ns();
    p.create();
    auto t1 = now_ns();
    p.attach();
    auto t2 = now_ns();
    p.destroy();
    auto t3 = now_ns();
    out[0].push_back(static_cast<uint32_t>(t1 - t0));
    out[1].push_back(static_cast<uint32_t>(t2 - t1));
    out[2].push_back(static_cast<uint32_t>(t3 - t2));
    out[3].push_back(static_cast<uint32_t>(t3 - t0));
  }
}

/// Segment set-up cost, `segment` against `posix` in alternating rounds
/// (`--setup-cycles` in all per path, rings of `--ring-capacity` bytes), in
/// this process with no peer running.
std::vector<setup_stats> run_setup(const options& opt) {
  auto prefix = peer_prefix(::getpid()); // both paths remove their name, also on errors
  segment_setup seg{prefix + "setup-segment", opt.ring_capacity};
  posix_setup raw{prefix + "setup-posix", opt.ring_capacity};
  std::array<std::vector<uint32_t>, 4> seg_ns, raw_ns;
  size_t rounds = std::max<size_t>(1, std::min(opt.rounds, opt.setup_cycles));
  time_setup(seg, std::min<size_t>(50, opt.setup_cycles), seg_ns); // warm-up
  time_setup(raw, std::min<size_t>(50, opt.setup_cycles), raw_ns);
  seg_ns = {};
  raw_ns = {};
  for (size_t r = 0; r < rounds; ++r) {
    auto n = opt.setup_cycles / rounds + (r < opt.setup_cycles % rounds ? 1 : 0);
    if (r % 2 == 0) {
      time_setup(seg, n, seg_ns);
      time_setup(raw, n, raw_ns);
    } else {
      time_setup(raw, n, raw_ns);
      time_setup(seg, n, seg_ns);
    }
  }
  auto stats = [](const char* name, std::array<std::vector<uint32_t>, 4>& ns) {
    return setup_stats{name, make_stats(std::move(ns[0]), 0), make_stats(std::move(ns[1]), 0),
                       make_stats(std::move(ns[2]), 0), make_stats(std::move(ns[3]), 0)};
  };
  return {stats("segment", seg_ns), stats("posix", raw_ns)};
}

void print_setup(const options& opt, const std::vector<setup_stats>& all) {
  if (all.empty())
    return;
  fmt::print("\nSEGMENT SET-UP, us (median / p99 of {} cycles per path, rings of {} bytes; "
             "segment: shm::segment create + attach + both destructors; posix: the same "
             "system calls without the class; ratio: segment / posix of the medians)\n",
             all[0].cycle.round_trips, opt.ring_capacity);
  fmt::print("{:>8} | {:>15} {:>15} {:>15} | {:>15}\n", "path", "create", "attach", "destroy",
             "cycle");
  auto cell = [](const rtt_stats& s) {
    return fmt::format("{:.2f} / {:.2f}", s.median / 1000.0, s.p99 / 1000.0);
  };
  for (auto& s : all)
    fmt::print("{:>8} | {:>15} {:>15} {:>15} | {:>15}\n", s.path, cell(s.create),
               cell(s.attach), cell(s.destroy), cell(s.cycle));
  if (all.size() == 2 && all[1].cycle.median > 0)
    fmt::print("{:>8} | {:>15.2f} {:>15.2f} {:>15.2f} | {:>15.2f}\n", "ratio",
               all[0].create.median / all[1].create.median,
               all[0].attach.median / all[1].attach.median,
               all[0].destroy.median / all[1].destroy.median,
               all[0].cycle.median / all[1].cycle.median);
}

// -- results -----------------------------------------------------------------------------

struct scenario_result {
  scenario sc;
  sched_info sched;
  int driver_cpu = -1, peer_cpu = -1;
  std::vector<size_result> latency;
  std::vector<tput_variant> tput;
  std::vector<breakdown> parts;
  mt::link_stats link; // summed over every bus link of the scenario
  uint64_t link_connects = 0;
  std::vector<std::string> notes;
  std::string load0, load1;
  double seconds = 0;
  const tput_variant* get(const std::string& n) const {
    for (auto& v : tput)
      if (v.name == n)
        return &v;
    return nullptr;
  }
};

// -- latency runner -----------------------------------------------------------------------------

std::vector<size_result> run_latency(const options& opt,
                                     std::vector<std::unique_ptr<rtt_path>>& paths,
                                     const std::string& label, const pair_counters& pc) {
  std::vector<size_result> out;
  for (auto size : opt.sizes) {
    auto payload = make_payload(size);
    auto total = roundtrips_for(opt, size);
    auto per_round = std::max<size_t>(1, total / opt.rounds);
    std::vector<std::vector<uint32_t>> samples(paths.size());
    std::vector<int64_t> elapsed(paths.size(), 0);
    std::vector<proc_counters> used(paths.size());
    std::vector<std::pair<uint64_t, uint64_t>> cpu0(paths.size());
    for (size_t k = 0; k < paths.size(); ++k) {
      paths[k]->set_payload(payload);
      cpu0[k] = paths[k]->same_cpu();
      samples[k].reserve(per_round * opt.rounds);
      paths[k]->begin_chunk();
      paths[k]->run(opt.warmup, nullptr);
      paths[k]->end_chunk();
    }
    for (size_t r = 0; r < opt.rounds; ++r)
      for (size_t q = 0; q < paths.size(); ++q) {
        auto k = (q + r) % paths.size(); // rotate the order every round
        paths[k]->begin_chunk();
        paths[k]->run(opt.chunk_warmup, nullptr);
        auto c0 = pc.read();
        elapsed[k] += paths[k]->run(per_round, &samples[k]);
        auto c1 = pc.read();
        paths[k]->end_chunk();
        used[k].switches += c1.switches - c0.switches;
        used[k].cpu_ns += c1.cpu_ns - c0.cpu_ns;
      }
    size_result res;
    res.size = size;
    std::string line;
    for (size_t k = 0; k < paths.size(); ++k) {
      auto st = make_stats(std::move(samples[k]), elapsed[k]);
      if (st.round_trips > 0) {
        st.switches_per_rt = static_cast<double>(std::max<int64_t>(used[k].switches, 0))
                             / static_cast<double>(st.round_trips);
        st.cpu_ns_per_rt = static_cast<double>(std::max<int64_t>(used[k].cpu_ns, 0))
                           / static_cast<double>(st.round_trips);
      }
      if (auto [same, checked] = paths[k]->same_cpu(); checked > cpu0[k].second)
        st.same_cpu = static_cast<double>(same - cpu0[k].first)
                      / static_cast<double>(checked - cpu0[k].second);
      res.paths[paths[k]->name()] = st;
      line += fmt::format(" {} {:.2f}", paths[k]->name(), st.median / 1000.0);
    }
    fmt::print("  {} {:>7}: median RTT us:{}; bus/raw busy {} hybrid {}\n", label,
               human_size(size), line, ratio_text(res.ratio("bus-busy", "raw-busy")),
               ratio_text(res.ratio("bus-hybrid", "raw-hybrid")));
    std::fflush(stdout);
    out.push_back(std::move(res));
  }
  return out;
}

// -- throughput runner ---------------------------------------------------------------------------

/// Raw one-way stream of `n` bare `payload` frames in `mode`; returns the ns
/// from the stream header to B's count arriving.
int64_t raw_stream(raw_ring_end& end, mt::wait_mode mode, uint64_t n,
                   const std::vector<uint8_t>& payload) {
  end.command(mode == mt::wait_mode::busy_poll ? cmd_busy : cmd_hybrid);
  bool notify = mode != mt::wait_mode::busy_poll;
  auto& w = end.writer();
  auto t0 = now_ns();
  end.command(cmd_stream, n);
  for (uint64_t i = 0; i < n; ++i) {
    auto* dst = reserve_spin(w, payload.size());
    std::memcpy(dst, payload.data(), payload.size());
    w.commit();
    if (notify)
      shm::notify_consumer(end.outgoing());
  }
  const uint8_t* f = nullptr;
  size_t got = 0;
  end.await(mode, f, got);
  auto dt = now_ns() - t0;
  raw_msg ack{};
  if (got >= sizeof(ack))
    std::memcpy(&ack, f, sizeof(ack));
  end.reader().release();
  end.command(cmd_park);
  if (ack.cmd != cmd_ack || ack.seq != n)
    throw bench_error(fmt::format("raw ring stream: the peer counted {} of {} messages", ack.seq,
                                  n));
  return dt;
}

/// One throughput variant: set up (untimed), stream `n` messages (timed),
/// tear down (untimed).
struct tput_runner {
  std::function<void()> begin = [] {};
  std::function<int64_t(uint64_t)> run;
  std::function<void()> end = [] {};
  std::function<double()> bytes_sent = [] { return -1.0; }; // -1: not known
};

std::vector<tput_variant> run_tput(const options& opt, raw_ring_end& raw, bus_end& bus,
                                   const pair_counters& pc, caf::actor_system& sys,
                                   const caf::actor& caf_remote) {
  auto payload = make_payload(opt.tput_payload);
  std::vector<tput_variant> vs;
  std::vector<tput_runner> runners;
  uint64_t round_no = 1;
  auto& tj = bus.tput();
  tj.payload = payload;
  tput_job caf_job;
  caf_job.payload = payload;
  caf::actor streamer;
  struct exit_guard {
    caf::actor& a;
    ~exit_guard() {
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
  } streamer_guard{streamer};
  auto run_bus = [&](uint64_t n) {
    tj.n = n;
    tj.acked = 0;
    tj.done = std::promise<void>{};
    auto f = tj.done.get_future();
    bus.node().publish(mb::fan_start{round_no++});
    await_bus(f, bus.link(), "bus throughput", 120s);
    if (tj.not_ok || tj.acked != n)
      throw bench_error(fmt::format("bus throughput: {} publishes not ok, {} of {} counted "
                                    "(link: back_pressured {}, dropped {})",
                                    tj.not_ok, tj.acked, n, bus.link().stats().back_pressured,
                                    bus.link().stats().dropped_overflow));
    return tj.elapsed_ns;
  };
  for (auto& name : opt.tput_paths) {
    tput_runner r;
    if (name == "raw-busy" || name == "raw-hybrid") {
      auto mode = mode_of(name);
      r.run = [&raw, mode, &payload](uint64_t n) { return raw_stream(raw, mode, n, payload); };
      r.bytes_sent = [&opt] { return static_cast<double>(opt.tput_payload); }; // bare frames
    } else if (name == "bus-busy" || name == "bus-hybrid") {
      auto mode = mode_of(name);
      r.begin = [&bus, mode, &opt, run_bus]() mutable {
        bus.connect(mode);
        run_bus(frames_per_ring_pass(opt.ring_capacity, opt.tput_payload) * 2); // warm-up
      };
      r.run = run_bus;
      r.end = [&bus] { bus.disconnect(); };
      r.bytes_sent = [&bus] { return static_cast<double>(bus.link().stats().bytes_sent); };
    } else if (name == "caf") {
      if (!caf_remote)
        continue;
      streamer = sys.spawn<caf_streamer>(&caf_job, caf_remote);
      r.run = [&](uint64_t n) {
        caf_job.n = n;
        caf_job.acked = 0;
        caf_job.done = std::promise<void>{};
        auto f = caf_job.done.get_future();
        caf::anon_send(streamer, start_atom::value, round_no++);
        await_done(f, "CAF BASP throughput", 120s);
        if (caf_job.acked != n)
          throw bench_error(fmt::format("CAF BASP throughput: {} of {} counted", caf_job.acked,
                                        n));
        return caf_job.elapsed_ns;
      };
    } else {
      continue;
    }
    vs.emplace_back().name = name;
    runners.push_back(std::move(r));
  }
  auto msgs_for = [&](size_t k) {
    return vs[k].name == "caf" ? opt.tput_caf_msgs : opt.tput_msgs;
  };
  // warm-up: one short round per variant
  for (size_t k = 0; k < vs.size(); ++k) {
    runners[k].begin();
    runners[k].run(std::max<uint64_t>(1, msgs_for(k) / 10));
    runners[k].end();
  }
  for (size_t r = 0; r < opt.tput_rounds; ++r)
    for (size_t q = 0; q < vs.size(); ++q) {
      auto k = (q + r) % vs.size();
      auto n = msgs_for(k);
      runners[k].begin();
      auto b0 = runners[k].bytes_sent();
      auto c0 = pc.read();
      auto dt = runners[k].run(n);
      auto c1 = pc.read();
      auto b1 = runners[k].bytes_sent();
      runners[k].end();
      auto& v = vs[k];
      v.cpu_ns += c1.cpu_ns - c0.cpu_ns;
      v.rates.push_back(static_cast<double>(n) * 1e9 / static_cast<double>(dt));
      v.messages += n;
      v.total_ns += dt;
      if (v.name.rfind("bus", 0) == 0)
        v.bytes_per_msg = (b1 - b0) / static_cast<double>(n);
      else if (b0 >= 0)
        v.bytes_per_msg = b0; // raw: fixed frame size
    }
  std::string line;
  for (auto& v : vs)
    line += fmt::format(" {} {} msg/s", v.name, rate(v.median()));
  fmt::print("  throughput ({} B payload, one-way):{}\n", opt.tput_payload, line);
  std::fflush(stdout);
  return vs;
}

// -- one scenario --------------------------------------------------------------------------------

scenario_result run_scenario(const options& opt, const scenario& sc) {
  scenario_result res;
  res.sc = sc;
  res.load0 = loadavg();
  auto t0 = now_ns();
  auto [dcpu, pcpu] = cpus_of(sc.pin);
  res.driver_cpu = dcpu;
  res.peer_cpu = pcpu;
  temp_dir dir{"mycelium-shm-"};
  std::vector<std::string> argv{
    "mycelium-bench-shm", "--role", "peer", "--config", sc.config, "--dir", dir.path.string(),
    "--cpu", std::to_string(pcpu), "--threads", std::to_string(sc.threads),
    "--ws-aggressive-polls", std::to_string(opt.ws_aggressive_polls),
    "--ws-moderate-sleep-ns", std::to_string(opt.ws_moderate_sleep_ns),
    "--ws-relaxed-sleep-us", std::to_string(opt.ws_relaxed_sleep_us),
    "--ws-spin-polls", std::to_string(opt.ws_spin_polls),
    "--max-throughput", std::to_string(opt.max_throughput), "--io-sched", opt.io_sched,
    "--ring-capacity", std::to_string(opt.ring_capacity),
    "--spin-us", std::to_string(opt.spin_us),
    "--mq-depth", std::to_string(opt.mq_depth), "--timer", opt.timer,
    "--block-timeout-ms", std::to_string(opt.block_timeout_ms),
    "--placement", opt.placement};
  dev_shm_sweeper sweeper; // runs after the peer is reaped (declared first)
  child_process peer{argv, (dir.path / "peer.log").string(), "/proc/self/exe",
                     std::chrono::seconds(2)};
  sweeper.watch(peer.pid());
  fatal_signal_guard registered{peer.pid()};
  auto line = peer.read_line(30s);
  if (line.rfind("ready", 0) != 0)
    throw bench_error("the peer process did not start: " + peer.stderr_text());
  auto kv = parse_kv(line);
  pin_self(dcpu);
  {
    stderr_to_file driver_log{(dir.path / "driver.log").string()};
    caf::actor_system_config cfg;
    configure(cfg, opt, sc.config, sc.threads);
    caf::actor_system sys{cfg};
    tune_io_thread(sys, opt.io_sched);
    res.sched = read_sched(sys);
    fmt::print("\n== scenario {}: driver pid {} cpu {}, peer pid {} cpu {}\n   {}\n", sc.name(),
               ::getpid(), dcpu < 0 ? std::string{"any"} : std::to_string(dcpu), peer.pid(),
               pcpu < 0 ? std::string{"any"} : std::to_string(pcpu), sched_text(res.sched));
    std::fflush(stdout);
    raw_ring_end raw{kv.at("raw"), opt.spin_us};
    bip::message_queue qab{bip::open_only, kv.at("mq_ab").c_str()};
    bip::message_queue qba{bip::open_only, kv.at("mq_ba").c_str()};
    // Both sides have the queues mapped: their names can go (nothing is left
    // in /dev/shm even if both processes are killed).
    bip::message_queue::remove(kv.at("mq_ab").c_str());
    bip::message_queue::remove(kv.at("mq_ba").c_str());
    bus_end bus{sys, opt, {{"busy", kv.at("busy")}, {"hybrid", kv.at("hybrid")}}};
    auto wants = [](const std::vector<std::string>& v, const char* x) {
      return std::find(v.begin(), v.end(), x) != v.end();
    };
    caf::actor caf_remote;
    if ((!opt.skip_latency && wants(opt.paths, "caf"))
        || (!opt.skip_tput && wants(opt.tput_paths, "caf")))
      caf_remote = remote_far(sys, static_cast<uint16_t>(std::stoi(kv.at("basp"))));
    pair_counters pc{peer.pid()};
    if (!opt.skip_latency) {
      std::vector<std::unique_ptr<rtt_path>> paths;
      for (auto& p : opt.paths) {
        if (sc.pin == "same" && (p == "raw-busy" || p == "bus-busy" || p == "bipc-spin")) {
          // Two busy-polling ends on one CPU wait for each other's time slice.
          std::string note = "busy-polling paths (raw-busy, bus-busy, bipc-spin) do not run "
                             "with pin=same";
          if (std::find(res.notes.begin(), res.notes.end(), note) == res.notes.end())
            res.notes.push_back(note);
          continue;
        }
        if (p == "raw-busy" || p == "raw-hybrid")
          paths.push_back(std::make_unique<raw_ring_rtt>(p, raw, mode_of(p)));
        else if (p == "bus-busy" || p == "bus-hybrid")
          paths.push_back(std::make_unique<shm_bus_rtt>(p, bus, mode_of(p), opt.ring_capacity));
        else if (p == "bipc" || p == "bipc-spin")
          paths.push_back(std::make_unique<bipc_rtt>(p, qab, qba, p == "bipc-spin"));
        else if (p == "caf")
          paths.push_back(std::make_unique<caf_rtt>("caf", sys, caf_remote));
      }
      res.latency = run_latency(opt, paths, fmt::format("[{}]", sc.name()), pc);
    }
    if (!opt.skip_latency && opt.diag_roundtrips > 0)
      res.parts = run_breakdown(opt, sys, kv);
    if (!opt.skip_tput)
      res.tput = run_tput(opt, raw, bus, pc, sys, caf_remote);
    bus.disconnect();
    res.link = bus.totals();
    res.link_connects = bus.connects();
    auto& l = res.link;
    if (l.back_pressured || l.dropped_overflow || l.dropped_link_down || l.bad_frames
        || l.disconnects > res.link_connects)
      res.notes.push_back(fmt::format(
        "bus link counters (all {} links): back_pressured {} dropped_overflow {} "
        "dropped_link_down {} bad_frames {} disconnects {}",
        res.link_connects, l.back_pressured, l.dropped_overflow, l.dropped_link_down,
        l.bad_frames, l.disconnects));
    for (auto& w : {" WARN ", " ERROR "})
      for (auto& l : driver_log.lines_with(w))
        res.notes.push_back("driver: " + l);
  }
  pin_self(-1);
  // The peer's warnings and errors (its stderr goes to a file in `dir`).
  std::istringstream plog{peer.stderr_text()};
  for (std::string l; std::getline(plog, l);)
    if (l.find(" WARN ") != std::string::npos || l.find(" ERROR ") != std::string::npos
        || l.find("peer ") == 0)
      res.notes.push_back("peer: " + l);
  res.load1 = loadavg();
  res.seconds = static_cast<double>(now_ns() - t0) / 1e9;
  return res;
}

// -- output ---------------------------------------------------------------------------------------

/// The raw path a bus path is held against.
const char* raw_of(const std::string& path) {
  if (path == "bus-busy")
    return "raw-busy";
  if (path == "bus-hybrid")
    return "raw-hybrid";
  return nullptr;
}

void print_scenario(const options& opt, const scenario_result& r) {
  fmt::print("\n=== SCENARIO {} ({}; driver cpu {}, peer cpu {}; loadavg {} -> {}; {:.0f} s)\n",
             r.sc.name(), sched_text(r.sched),
             r.driver_cpu < 0 ? std::string{"any"} : std::to_string(r.driver_cpu),
             r.peer_cpu < 0 ? std::string{"any"} : std::to_string(r.peer_cpu), r.load0, r.load1,
             r.seconds);
  if (!r.latency.empty()) {
    fmt::print("\nROUND-TRIP LATENCY, us (ROUND TRIPS, not one-way); cs/rt: context switches, "
               "cpu/rt: on-CPU us, both processes together per round trip; same: share of "
               "round trips echoed on the driver's CPU; bus/raw: median over the raw ring in "
               "the same wait mode\n");
    fmt::print("{:>7} {:>10} | {:>8} {:>8} {:>8} {:>9} {:>8} | {:>9} | {:>5} {:>6} {:>5} | "
               "{:>7}\n",
               "size", "path", "median", "p99", "p99.9", "max", "mean", "rt/s", "cs/rt",
               "cpu/rt", "same", "bus/raw");
    fmt::print("{}\n", std::string(112, '-'));
    auto us2 = [](double ns) { return fmt::format("{:.2f}", ns / 1000.0); };
    for (auto& s : r.latency)
      for (auto& p : opt.paths) {
        auto i = s.paths.find(p);
        if (i == s.paths.end())
          continue;
        auto& st = i->second;
        auto* raw = raw_of(p);
        fmt::print("{:>7} {:>10} | {:>8} {:>8} {:>8} {:>9} {:>8} | {:>9} | {:>5.1f} {:>6} {:>5} | "
                   "{:>7}\n",
                   human_size(s.size), p, us2(st.median), us2(st.p99), us2(st.p999),
                   us2(st.max), us2(st.mean), rate(st.rt_per_s), st.switches_per_rt,
                   us2(st.cpu_ns_per_rt),
                   st.same_cpu >= 0 ? fmt::format("{:.0f}%", 100 * st.same_cpu) : "",
                   raw ? ratio_text(s.ratio(p, raw)) : "");
      }
    fmt::print("\nSUMMARY, median / p99 RTT in us\n");
    fmt::print("{:>7} | {:>15} {:>15} {:>7} | {:>15} {:>15} {:>7} | {:>15} {:>15} {:>15}\n",
               "size", "raw-busy", "bus-busy", "ratio", "raw-hybrid", "bus-hybrid", "ratio",
               "bipc", "bipc-spin", "caf");
    for (auto& s : r.latency) {
      auto cell = [&](const char* p) {
        auto i = s.paths.find(p);
        return i == s.paths.end() ? std::string{"-"}
                                  : fmt::format("{:.2f} / {:.2f}", i->second.median / 1000.0,
                                                i->second.p99 / 1000.0);
      };
      fmt::print("{:>7} | {:>15} {:>15} {:>7} | {:>15} {:>15} {:>7} | {:>15} {:>15} {:>15}\n",
                 human_size(s.size), cell("raw-busy"), cell("bus-busy"),
                 ratio_text(s.ratio("bus-busy", "raw-busy")), cell("raw-hybrid"),
                 cell("bus-hybrid"), ratio_text(s.ratio("bus-hybrid", "raw-hybrid")),
                 cell("bipc"), cell("bipc-spin"), cell("caf"));
    }
  }
  if (!r.parts.empty()) {
    fmt::print("\nBREAKDOWN of a 16 B bus round trip (stamped ping-pong, TSC read in both "
               "processes; median / p99 in us): A->B = publish(ping) on A's worker until the "
               "ping handler starts on B's worker; B->A = from there until the pong handler "
               "starts on A's worker\n");
    fmt::print("{:>10} | {:>13} | {:>15} | {:>15} | {:>15} | {:>6}\n", "path", "RTT",
               "A->B", "B->A", "publish call", "n");
    for (auto& b : r.parts)
      fmt::print("{:>10} | {:>13} | {:>15} | {:>15} | {:>15} | {:>6}\n", "bus-" + b.mode,
                 fmt::format("{:.2f} / {:.2f}", b.rtt_med / 1000, b.rtt_p99 / 1000),
                 fmt::format("{:.2f} / {:.2f}", b.a_to_b_med / 1000, b.a_to_b_p99 / 1000),
                 fmt::format("{:.2f} / {:.2f}", b.b_to_a_med / 1000, b.b_to_a_p99 / 1000),
                 fmt::format("{:.2f} / {:.2f}", b.publish_med / 1000, b.publish_p99 / 1000),
                 b.round_trips);
  }
  if (!r.tput.empty()) {
    fmt::print("\nONE-WAY THROUGHPUT, {} B payload, {} messages ({} for caf) x {} rounds per "
               "variant (median of rounds)\n",
               opt.tput_payload, opt.tput_msgs, opt.tput_caf_msgs, opt.tput_rounds);
    fmt::print("{:>10} | {:>10} | {:>19} | {:>9} | {:>11} | {:>8}\n", "variant", "msg/s",
               "rounds min..max", "bytes/msg", "cpu ns/msg", "bus/raw");
    for (auto& v : r.tput) {
      auto* raw = raw_of(v.name) ? r.get(raw_of(v.name)) : nullptr;
      fmt::print("{:>10} | {:>10} | {:>19} | {:>9} | {:>11.0f} | {:>8}\n", v.name,
                 rate(v.median()), rate(v.min()) + ".." + rate(v.max()),
                 v.bytes_per_msg > 0 ? fmt::format("{:.1f}", v.bytes_per_msg) : "-",
                 v.cpu_ns_per_msg(), raw ? ratio_text(v.median() / raw->median()) : "");
    }
  }
  fmt::print("\nbus links: {} connected and closed; frames sent {}, received {}\n",
             r.link_connects, r.link.frames_sent, r.link.frames_received);
  for (auto& n : r.notes)
    fmt::print("note: {}\n", n);
}

void print_goals(const std::vector<scenario_result>& all) {
  fmt::print("\nGOALS (issue 10): the bus's own cost (bus round trip minus raw ring round trip, "
             "medians of the same run) <= 0.8 us at 16 B, busy-poll and spin-then-block; "
             "shm >= 10 M msg/s one-way (64 B)\n");
  for (auto& r : all) {
    for (auto& s : r.latency)
      for (const char* p : {"bus-busy", "bus-hybrid"}) {
        auto bus = s.paths.find(p), raw = s.paths.find(raw_of(p));
        if (bus == s.paths.end() || raw == s.paths.end())
          continue;
        auto cost_us = (bus->second.median - raw->second.median) / 1000.0;
        fmt::print("  [{}] {:>7} {:>10}: bus cost {:.2f} us, bus/raw {:.2f}{}\n", r.sc.name(),
                   human_size(s.size), p, cost_us, s.ratio(p, raw_of(p)),
                   s.size == 16 ? (cost_us <= 0.8 ? " (met)" : " (NOT met)") : "");
      }
    for (const char* p : {"bus-busy", "bus-hybrid"})
      if (auto* v = r.get(p))
        fmt::print("  [{}] throughput {}: {} msg/s ({})\n", r.sc.name(), p, rate(v->median()),
                   v->median() >= 10e6 ? "met" : "NOT met");
  }
}

void write_json(const options& opt, const std::vector<scenario_result>& all,
                const std::vector<setup_stats>& setup, const std::string& timer_text,
                const std::string& started, const std::string& load0, double total_s) {
  std::ostringstream o;
  o << "{\n  \"benchmark\": \"mycelium-bench-shm\",\n";
  o << "  \"started\": " << json_str(started) << ",\n";
  o << "  \"duration_s\": " << fmt::format("{:.1f}", total_s) << ",\n";
  o << "  \"latency_unit\": \"round-trip time in ns (NOT one-way)\",\n";
  o << "  \"throughput_unit\": \"one-way messages per second, median of rounds\",\n";
  o << "  \"machine\": {" << json_machine_fields()
    << ", \"boost_version\": " << json_str(BOOST_LIB_VERSION)
    << ", \"loadavg_at_start\": " << json_str(load0)
    << ", \"loadavg_at_end\": " << json_str(loadavg())
    << ", \"timer\": " << json_str(timer_text) << "},\n";
  o << "  \"options\": {\"sizes\": [";
  for (size_t i = 0; i < opt.sizes.size(); ++i)
    o << (i ? ", " : "") << opt.sizes[i];
  o << "], \"rounds\": " << opt.rounds << ", \"roundtrips\": " << opt.roundtrips
    << ", \"roundtrips_large\": " << opt.roundtrips_large << ", \"warmup\": " << opt.warmup
    << ", \"chunk_warmup\": " << opt.chunk_warmup << ", \"ring_capacity\": " << opt.ring_capacity
    << ", \"spin_us\": " << opt.spin_us << ", \"mq_depth\": " << opt.mq_depth
    << ", \"io_sched\": " << json_str(opt.io_sched)
    << ", \"block_timeout_ms\": " << opt.block_timeout_ms
    << ", \"tput_messages\": " << opt.tput_msgs << ", \"tput_caf_messages\": "
    << opt.tput_caf_msgs << ", \"tput_rounds\": " << opt.tput_rounds
    << ", \"tput_payload\": " << opt.tput_payload
    << ", \"setup_cycles\": " << opt.setup_cycles
    << ", \"quick\": " << (opt.quick ? "true" : "false") << "},\n";
  o << "  \"segment_setup_ns\": {";
  for (size_t i = 0; i < setup.size(); ++i) {
    auto& st = setup[i];
    auto phase = [](const rtt_stats& x) {
      return fmt::format("{{\"median\": {:.0f}, \"p99\": {:.0f}, \"mean\": {:.0f}}}", x.median,
                         x.p99, x.mean);
    };
    o << (i ? ", " : "") << json_str(st.path) << ": {\"cycles\": " << st.cycle.round_trips
      << ", \"create\": " << phase(st.create) << ", \"attach\": " << phase(st.attach)
      << ", \"destroy\": " << phase(st.destroy) << ", \"cycle\": " << phase(st.cycle) << "}";
  }
  o << "},\n";
  o << "  \"scenarios\": [\n";
  for (size_t si = 0; si < all.size(); ++si) {
    auto& r = all[si];
    auto& s = r.sched;
    o << "    {\"name\": " << json_str(r.sc.name()) << ", \"config\": " << json_str(r.sc.config)
      << ", \"threads\": " << r.sc.threads << ", \"pin\": " << json_str(r.sc.pin)
      << ", \"driver_cpu\": " << r.driver_cpu << ", \"peer_cpu\": " << r.peer_cpu
      << ", \"seconds\": " << fmt::format("{:.1f}", r.seconds) << ", \"loadavg\": ["
      << json_str(r.load0) << ", " << json_str(r.load1) << "],\n";
    o << "     \"scheduler\": {\"policy\": " << json_str(s.policy)
      << ", \"max_threads\": " << s.max_threads << ", \"workers\": " << s.workers
      << ", \"max_throughput\": " << s.max_throughput
      << ", \"middleman_workers\": " << s.mm_workers
      << ", \"aggressive_poll_attempts\": " << s.aggressive_poll_attempts
      << ", \"moderate_poll_attempts\": " << s.moderate_poll_attempts
      << ", \"moderate_sleep_ns\": " << s.moderate_sleep_ns
      << ", \"relaxed_sleep_ns\": " << s.relaxed_sleep_ns << "},\n";
    o << "     \"notes\": [";
    for (size_t i = 0; i < r.notes.size(); ++i)
      o << (i ? ", " : "") << json_str(r.notes[i]);
    o << "],\n     \"latency\": [\n";
    for (size_t i = 0; i < r.latency.size(); ++i) {
      auto& sr = r.latency[i];
      o << "       {\"size\": " << sr.size;
      for (auto& [name, st] : sr.paths)
        o << ", " << json_str(name) << ": " << json_stats(st);
      o << ", \"ratio_median_bus_busy_over_raw_busy\": "
        << fmt::format("{:.4f}", sr.ratio("bus-busy", "raw-busy"))
        << ", \"ratio_median_bus_hybrid_over_raw_hybrid\": "
        << fmt::format("{:.4f}", sr.ratio("bus-hybrid", "raw-hybrid"))
        << ", \"ratio_median_bus_busy_over_bipc_spin\": "
        << fmt::format("{:.4f}", sr.ratio("bus-busy", "bipc-spin"))
        << ", \"ratio_median_bus_hybrid_over_bipc\": "
        << fmt::format("{:.4f}", sr.ratio("bus-hybrid", "bipc"))
        << ", \"ratio_median_bus_hybrid_over_caf\": "
        << fmt::format("{:.4f}", sr.ratio("bus-hybrid", "caf")) << "}"
        << (i + 1 < r.latency.size() ? ",\n" : "\n");
    }
    o << "     ],\n     \"throughput\": {";
    for (size_t i = 0; i < r.tput.size(); ++i) {
      auto& v = r.tput[i];
      o << (i ? ", " : "") << json_str(v.name) << ": {\"msgs_per_s_median\": "
        << fmt::format("{:.0f}", v.median()) << ", \"msgs_per_s_aggregate\": "
        << fmt::format("{:.0f}", v.total_ns ? static_cast<double>(v.messages) * 1e9
                                                / static_cast<double>(v.total_ns)
                                            : 0.0)
        << ", \"bytes_per_msg\": " << fmt::format("{:.1f}", v.bytes_per_msg)
        << ", \"cpu_ns_per_msg\": " << fmt::format("{:.0f}", v.cpu_ns_per_msg())
        << ", \"rounds\": [";
      for (size_t q = 0; q < v.rates.size(); ++q)
        o << (q ? ", " : "") << fmt::format("{:.0f}", v.rates[q]);
      o << "]}";
    }
    o << "},\n     \"breakdown_16B_ns\": [";
    for (size_t i = 0; i < r.parts.size(); ++i) {
      auto& b = r.parts[i];
      o << (i ? ", " : "") << "{\"path\": " << json_str("bus-" + b.mode)
        << ", \"round_trips\": " << b.round_trips
        << fmt::format(", \"rtt_median\": {:.0f}, \"rtt_p99\": {:.0f}, \"a_to_b_median\": "
                       "{:.0f}, \"a_to_b_p99\": {:.0f}, \"b_to_a_median\": {:.0f}, "
                       "\"b_to_a_p99\": {:.0f}, \"publish_call_median\": {:.0f}, "
                       "\"publish_call_p99\": {:.0f}}}",
                       b.rtt_med, b.rtt_p99, b.a_to_b_med, b.a_to_b_p99, b.b_to_a_med,
                       b.b_to_a_p99, b.publish_med, b.publish_p99);
    }
    o << "],\n     \"link\": {\"links_connected\": " << r.link_connects
      << ", \"frames_sent\": " << r.link.frames_sent << ", \"bytes_sent\": " << r.link.bytes_sent
      << ", \"frames_received\": " << r.link.frames_received
      << ", \"back_pressured\": " << r.link.back_pressured
      << ", \"dropped_overflow\": " << r.link.dropped_overflow
      << ", \"dropped_link_down\": " << r.link.dropped_link_down
      << ", \"bad_frames\": " << r.link.bad_frames << "}}"
      << (si + 1 < all.size() ? ",\n" : "\n");
  }
  o << "  ]\n}\n";
  std::filesystem::path p{opt.json};
  if (p.has_parent_path())
    std::filesystem::create_directories(p.parent_path());
  std::ofstream f{p};
  f << o.str();
  if (!f)
    fmt::print(stderr, "cannot write {}\n", opt.json);
  else
    fmt::print("\nwrote {}\n", opt.json);
}

int run_driver(options& opt) {
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_fatal_signal);
  std::signal(SIGTERM, on_fatal_signal);
  std::vector<scenario> scs;
  for (auto& s : opt.scenarios)
    scs.push_back(parse_scenario(s, opt.threads));
  auto t_start = now_ns();
  if (opt.timer == "tsc" && cpu_has_invariant_tsc()) {
    g_ns_per_tick = calibrate_tsc();
    g_tsc = true;
  }
  std::string timer_text = g_tsc ? fmt::format("rdtsc, {:.4f} GHz calibrated against steady_clock",
                                               1.0 / g_ns_per_tick)
                                 : std::string{"std::chrono::steady_clock"};
  char started[64];
  auto tt = std::time(nullptr);
  std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&tt));
  auto load0 = loadavg();
  fmt::print("mycelium-bench-shm  {}  cpu: {}  hw threads: {}  loadavg: {}\n", started,
             read_first_line_with("/proc/cpuinfo", "model name"),
             std::thread::hardware_concurrency(), load0);
  fmt::print("timer: {}; ALL LATENCIES ARE ROUND TRIPS (A -> B -> A); throughput is one-way\n",
             timer_text);
  fmt::print("round trips per path: {} for sizes <= 1 KiB, {} above, in {} alternating rounds, "
             "after {} warm-up round trips (and {} per chunk; bus: one ring pass at least); "
             "rings of {} bytes, spin {} us, I/O threads: {}\n",
             opt.roundtrips, opt.roundtrips_large, opt.rounds, opt.warmup, opt.chunk_warmup,
             opt.ring_capacity, opt.spin_us, opt.io_sched);
#ifndef NDEBUG
  fmt::print("WARNING: built without NDEBUG (not a Release build)\n");
#endif
  std::vector<setup_stats> setup;
  if (opt.setup_cycles > 0)
    setup = run_setup(opt);
  std::vector<scenario_result> results;
  if (!opt.setup_only)
    for (auto& sc : scs)
      results.push_back(run_scenario(opt, sc));
  print_setup(opt, setup);
  for (auto& r : results)
    print_scenario(opt, r);
  if (!results.empty())
    print_goals(results);
  auto total_s = static_cast<double>(now_ns() - t_start) / 1e9;
  write_json(opt, results, setup, timer_text, started, load0, total_s);
  fmt::print("total run time {:.1f} s\n", total_s);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"mycelium-bench-shm: round-trip latency and one-way throughput of Mycelium's "
               "shared-memory links between two processes, against the same ring without the "
               "bus, Boost.Interprocess message queues and CAF remote actors (BASP) in the "
               "same run"};
  app.option_defaults()->always_capture_default();
  app.add_option("--sizes", opt.sizes, "payload sizes in bytes (latency)")->delimiter(',');
  app.add_option("--rounds", opt.rounds, "alternating timed rounds per size");
  app.add_option("--roundtrips", opt.roundtrips,
                 "timed round trips per path for sizes <= 1 KiB (split over the rounds)");
  app.add_option("--roundtrips-large", opt.roundtrips_large,
                 "timed round trips per path for sizes > 1 KiB");
  app.add_option("--warmup", opt.warmup, "untimed warm-up round trips per path and size");
  app.add_option("--chunk-warmup", opt.chunk_warmup,
                 "untimed round trips before every timed chunk (bus paths: at least one pass "
                 "over the fresh link's ring)");
  app.add_option("--paths", opt.paths,
                 "latency paths: raw-busy, bus-busy, raw-hybrid, bus-hybrid, bipc, bipc-spin, "
                 "caf")
    ->delimiter(',')
    ->check(CLI::IsMember(
      {"raw-busy", "bus-busy", "raw-hybrid", "bus-hybrid", "bipc", "bipc-spin", "caf"}));
  app.add_option("--scenarios", opt.scenarios,
                 "CONFIG[/THREADS]@PIN list; CONFIG: default (CAF defaults), wake (no 50 us "
                 "moderate sleeps: idle workers wait on their condition variable), spin (wake, "
                 "after --ws-spin-polls polls), tuned (spin: --ws-* values); THREADS: "
                 "scheduler.max-threads (default --threads); PIN: none, split (driver CPU 0, "
                 "peer CPU 1), same (both CPU 0)")
    ->delimiter(',');
  app.add_option("--threads", opt.threads,
                 "scheduler.max-threads of both actor systems when a scenario names none");
  app.add_option("--ws-aggressive-polls", opt.ws_aggressive_polls,
                 "tuned: work-stealing.aggressive-poll-attempts");
  app.add_option("--ws-moderate-sleep-ns", opt.ws_moderate_sleep_ns,
                 "tuned: work-stealing.moderate-sleep-duration in ns (0 = spin)");
  app.add_option("--ws-relaxed-sleep-us", opt.ws_relaxed_sleep_us,
                 "tuned: work-stealing.relaxed-sleep-duration in us");
  app.add_option("--ws-spin-polls", opt.ws_spin_polls,
                 "spin: work-stealing.aggressive-poll-attempts");
  app.add_option("--max-throughput", opt.max_throughput,
                 "scheduler.max-throughput; -1: CAF's default (unlimited)");
  app.add_option("--placement", opt.placement,
                 "where the bus paths' services run in both processes: pool (CAF's "
                 "workers) or loop (the I/O loop that polls the rings)")
    ->check(CLI::IsMember({"pool", "loop"}));
  app.add_option("--io-sched", opt.io_sched,
                 "scheduling of the middleman's I/O thread in both processes: normal, nice:N "
                 "(e.g. nice:19) or idle (SCHED_IDLE: runs only when nothing else wants the "
                 "CPU)");
  app.add_option("--ring-capacity", opt.ring_capacity,
                 "bytes per ring, raw and links alike (a power of two; a 64 KiB ping must fit "
                 "in half of it)");
  app.add_option("--spin-us", opt.spin_us,
                 "spin_then_block: microseconds of polling before sleeping (raw waiter and link)");
  app.add_option("--mq-depth", opt.mq_depth, "Boost message_queue capacity (messages)");
  app.add_option("--tput-msgs", opt.tput_msgs, "messages per throughput round");
  app.add_option("--tput-caf-msgs", opt.tput_caf_msgs,
                 "messages per CAF BASP throughput round (BASP is slow: fewer)");
  app.add_option("--tput-rounds", opt.tput_rounds, "timed throughput rounds per variant");
  app.add_option("--tput-payload", opt.tput_payload, "throughput payload bytes");
  app.add_option("--tput-paths", opt.tput_paths,
                 "throughput variants: raw-busy, bus-busy, raw-hybrid, bus-hybrid, caf")
    ->delimiter(',')
    ->check(CLI::IsMember({"raw-busy", "bus-busy", "raw-hybrid", "bus-hybrid", "caf"}));
  app.add_option("--block-timeout-ms", opt.block_timeout_ms,
                 "link block_timeout: how long a publisher waits for room in the ring");
  app.add_option("--diag-roundtrips", opt.diag_roundtrips,
                 "stamped 16 B bus round trips per wait mode for the breakdown (A->B, B->A, "
                 "publish call); 0: none");
  app.add_option("--setup-cycles", opt.setup_cycles,
                 "segment create / attach / destroy cycles per set-up path (segment, posix), "
                 "before the scenarios; 0: none");
  app.add_flag("--setup-only", opt.setup_only, "only the segment set-up, no scenario");
  app.add_flag("--skip-latency", opt.skip_latency, "skip the round-trip part");
  app.add_flag("--skip-throughput", opt.skip_tput, "skip the throughput part");
  app.add_flag("--quick", opt.quick,
               "smoke run (~5 s): sizes 16,4096,65536, 3 rounds, 3,000 / 600 round trips, "
               "200,000 messages x 2 rounds, 2,000 stamped round trips, 200 set-up cycles, first "
               "scenario only, JSON to $TMPDIR/mycelium-shm-quick.json; options given "
               "explicitly win");
  app.add_option("--timer", opt.timer, "tsc (rdtsc calibrated against steady_clock) or steady")
    ->check(CLI::IsMember({"tsc", "steady"}));
  app.add_option("--json", opt.json, "JSON output file");
  // hidden: the far side
  app.add_option("--role", opt.role)->group("");
  app.add_option("--config", opt.config)->group("");
  app.add_option("--dir", opt.dir)->group("");
  app.add_option("--cpu", opt.cpu)->group("");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!shm::valid_capacity(opt.ring_capacity))
      throw bench_error(fmt::format("--ring-capacity {} is not a power of two from 64 bytes "
                                    "to 1 GiB",
                                    opt.ring_capacity));
    if (opt.role == "peer")
      return run_peer(opt);
    if (!opt.role.empty())
      throw bench_error("unknown --role " + opt.role);
    if (opt.rounds == 0 || opt.roundtrips == 0 || opt.roundtrips_large == 0 || opt.tput_msgs == 0
        || opt.tput_caf_msgs == 0 || opt.tput_rounds == 0 || opt.threads == 0
        || opt.tput_payload == 0 || opt.mq_depth == 0)
      throw bench_error("counts must be positive");
    auto largest = std::max<size_t>(*std::max_element(opt.sizes.begin(), opt.sizes.end()),
                                    opt.tput_payload);
    if (largest > 65536)
      throw bench_error(fmt::format("payload size {} exceeds the schema maximum 65536", largest));
    // A ping of the largest size (frame header + TLV overhead) must fit.
    if (mycelium::wire::frame_header::size + largest + 64 > shm::max_frame_for(opt.ring_capacity))
      throw bench_error(fmt::format("--ring-capacity {} is too small for {}-byte payloads: "
                                    "use at least {}",
                                    opt.ring_capacity, largest,
                                    2 * (largest + 128) > 262144 ? 2 * (largest + 128) : 262144));
    if (opt.quick) { // small counts, unless given explicitly
      auto unset = [&](const char* name) { return app.count(name) == 0; };
      if (unset("--sizes"))
        opt.sizes = {16, 4096, 65536};
      if (unset("--rounds"))
        opt.rounds = 3;
      if (unset("--roundtrips"))
        opt.roundtrips = 3000;
      if (unset("--roundtrips-large"))
        opt.roundtrips_large = 600;
      if (unset("--warmup"))
        opt.warmup = 200;
      if (unset("--tput-msgs"))
        opt.tput_msgs = 200000;
      if (unset("--tput-caf-msgs"))
        opt.tput_caf_msgs = 20000;
      if (unset("--tput-rounds"))
        opt.tput_rounds = 2;
      if (unset("--scenarios"))
        opt.scenarios.resize(1);
      if (unset("--diag-roundtrips"))
        opt.diag_roundtrips = 2000;
      if (unset("--setup-cycles"))
        opt.setup_cycles = 200;
      if (unset("--json")) // a smoke run does not touch benchmarks/results/
        opt.json = (std::filesystem::temp_directory_path() / "mycelium-shm-quick.json").string();
    }
    return run_driver(opt);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "mycelium-bench-shm: {}\n", e.what());
    return 1;
  }
}
