// mycelium-bench-inprocess: in-process hop latency and fan-out throughput of
// the Mycelium bus, against raw CAF message passing measured in the same run.
//
//  1. Latency. Ping-pong between two actors of one actor_system, one path
//     after the other in alternating rounds (the order rotates every round)
//     after a warm-up. The pinger reads the timer before it sends `ping` and
//     when `pong` arrives; the figures reported per HOP are one-way values
//     derived from round trips (RTT / 2). Every path does the same user work
//     per hop (a message whose payload is a copy of N bytes). Paths
//     (`--paths`):
//       caf       raw baseline on CAF's worker pool: two plain
//                 event_based_actors, `send(peer, ping)` / `send(pinger, pong)`
//       bus       two mycelium services with placement pool: A publishes
//                 `ping`, B subscribes to it and publishes `pong`, A
//                 subscribes to `pong` (goal: <= 1.05 x caf)
//       call      raw floor on the I/O loop thread: the same pinger logic,
//                 each hop an indirect call through a std::function (a
//                 trampoline breaks the recursion), run inside a broker on
//                 the middleman's thread
//       caf-loop  raw CAF on the I/O loop: two broker-like actors (class-
//                 based caf::io::broker without sockets) that the
//                 multiplexer resumes, exchanging `send`s; each hop is a
//                 mailbox element and one turn of the loop
//       bus-loop  the bus path with both services placed on the loop
//                 (placement loop, a node of its own): a publish on the loop
//                 thread to an idle loop service is a direct call of its
//                 handler, without a mailbox (goal: <= 200 ns median)
//     The actor system loads CAF's middleman with Mycelium's I/O loop
//     (mycelium::transports::load_io_loop); its thread sleeps in epoll while
//     the pool paths run. A loop round starts with a message from main (it
//     enters the pinger's mailbox); from then on everything happens on the
//     loop thread. In bus-loop a ping finds the ponger idle and is a direct
//     call; the ponger's pong finds the pinger still in its handler (no
//     re-entry), so it goes through the pinger's mailbox, which CAF drains in
//     the same resume. The three loop paths therefore also split every round
//     trip into its two ONE-WAY hops (one thread, one clock): the ponger
//     reads the timer at its handler's entry, which costs one extra timer
//     read (~9 ns) per round trip in these paths only.
//  2. Fan-out throughput. One publisher sends N 64-byte `tick`s to 1, 4 and 16
//     subscribers: through the bus (services), and with raw CAF (`send` of one
//     shared caf::message to every subscriber, and `send` of the value, which
//     copies it per subscriber). Windowed flow control (subscribers ack every
//     `batch` ticks) keeps the mailboxes bounded; the run ends when every
//     subscriber has reported the full count (an event, never a sleep).
//     Subscribers record where they found tick #0 to prove the payload is
//     shared.
//
// See docs/benchmarks.md for how to read the output.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/format.h>

#include "bench_messages.hpp"
#include "bench_clock.hpp"
#include "bench_report.hpp"
#include "bench_sched.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/transports/loop/io_loop.hpp"

#ifndef MYCELIUM_BENCH_RESULTS_DIR
#define MYCELIUM_BENCH_RESULTS_DIR "benchmarks/results"
#endif

// -- allocation counter ---------------------------------------------------------
// Counts heap allocations per thread so the fan-out benchmark can report
// allocations per publish (the goal: one payload allocation for N
// subscribers). Applies to every variant alike.

// GCC flags free() on memory from (our replacement) operator new.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
thread_local uint64_t tl_allocs = 0;
} // namespace

void* operator new(std::size_t n) {
  ++tl_allocs;
  if (void* p = std::malloc(n == 0 ? 1 : n))
    return p;
  throw std::bad_alloc{};
}
void* operator new[](std::size_t n) {
  return ::operator new(n);
}
void* operator new(std::size_t n, std::align_val_t al) {
  ++tl_allocs;
  auto a = static_cast<std::size_t>(al);
  auto sz = (n + a - 1) / a * a;
  if (void* p = std::aligned_alloc(a, sz == 0 ? a : sz))
    return p;
  throw std::bad_alloc{};
}
void* operator new[](std::size_t n, std::align_val_t al) {
  return ::operator new(n, al);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace {

using namespace mycelium::bench; // clock, report and scheduler helpers

namespace mb = mbench;

using start_atom = caf::atom_constant<caf::atom("bstart")>;
using peer_atom = caf::atom_constant<caf::atom("bpeer")>;

// Round trips are timed with the TSC (calibrated against steady_clock at start)
// when the CPU has an invariant TSC, else with steady_clock (bench_clock.hpp).

inline uint64_t addr_of(const void* p) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
}

// -- options --------------------------------------------------------------------

struct options {
  std::vector<size_t> sizes{16, 256, 4096, 65536};
  size_t rounds = 10;
  size_t round_trips = 20000; // per round and variant
  size_t warmup = 5000;       // per size and variant
  size_t threads = 2;
  std::vector<std::string> configs{"default", "tuned"};
  std::vector<std::string> paths{"caf", "bus", "call", "caf-loop", "bus-loop"};
  int64_t ws_aggressive_polls = 100000;
  int64_t ws_moderate_sleep_ns = 0;
  int64_t ws_relaxed_sleep_us = 100;
  std::vector<size_t> fan_subs{1, 4, 16};
  size_t fan_msgs = 100000;
  size_t fan_rounds = 7;
  size_t fan_batch = 1000;
  size_t fan_window = 4;
  size_t fan_payload = 64;
  std::string timer = "tsc";
  bool skip_latency = false;
  bool skip_fanout = false;
  std::string json = MYCELIUM_BENCH_RESULTS_DIR "/inprocess.json";
};

// -- latency: shared job description ---------------------------------------------

/// One round of ping-pong: written by main before the start message, read and
/// filled by the pinger, read by main after `done` (message passing and the
/// promise order the accesses).
struct lat_job {
  uint64_t n = 0;
  std::vector<uint8_t> payload;
  bool record = true;
  std::vector<uint32_t> samples; // RTT in ns, appended per round trip
  int64_t elapsed_ns = 0;        // of the last round
  uint64_t errors = 0;           // wrong seq / size / publish status
  uint64_t cpu_changes = 0;      // pongs handled on another CPU than the last
  // Loop-thread paths only (pinger and ponger on one thread, one clock): the
  // ponger writes the timer at its handler's entry into `stamp`, and the
  // pinger splits each round trip into its two one-way hops.
  bool split = false;
  int64_t stamp = 0;
  std::vector<uint32_t> fwd;  // ping: pinger's send -> ponger's handler entry, ns
  std::vector<uint32_t> back; // pong: ponger's handler entry -> pinger's handler entry, ns
  std::promise<void> done;
};

/// The pinger logic, identical for the raw and the bus variant; `Send`
/// emits one ping.
struct pinger_logic {
  lat_job* job;
  uint64_t i = 0;
  int64_t t0 = 0;
  int64_t begin = 0;
  int last_cpu = -1;

  template <class Send>
  void start(Send send) {
    i = 0;
    last_cpu = -1;
    begin = now_ns();
    t0 = ticks();
    send(mb::ping{i, job->payload});
  }

  template <class Send>
  void on_pong(const mb::pong& x, Send send) {
    auto t1 = ticks();
    if (x.seq != i || x.payload.size() != job->payload.size())
      ++job->errors;
    if (job->record) {
      auto to_ns = [](int64_t dt) {
        auto ns = static_cast<double>(dt) * g_ns_per_tick + 0.5;
        return static_cast<uint32_t>(std::clamp<double>(ns, 0, UINT32_MAX));
      };
      job->samples.push_back(to_ns(t1 - t0));
      if (job->split) {
        job->fwd.push_back(to_ns(job->stamp - t0));
        job->back.push_back(to_ns(t1 - job->stamp));
      }
      // Did the pair move to the other core? (outside the timed interval)
      auto cpu = sched_getcpu();
      if (last_cpu >= 0 && cpu != last_cpu)
        ++job->cpu_changes;
      last_cpu = cpu;
    }
    if (++i < job->n) {
      t0 = ticks();
      send(mb::ping{i, job->payload});
    } else {
      job->elapsed_ns = now_ns() - begin;
      job->done.set_value();
    }
  }
};

// -- latency: raw CAF pair ---------------------------------------------------------

class caf_pinger : public caf::event_based_actor {
public:
  caf_pinger(caf::actor_config& cfg, lat_job* job)
    : event_based_actor(cfg), logic_{job} {
  }

  caf::behavior make_behavior() override {
    auto snd = [this](mb::ping&& x) { send(peer_, std::move(x)); };
    return {
      [this, snd](const mb::pong& x) { logic_.on_pong(x, snd); },
      [this, snd](start_atom) { logic_.start(snd); },
      [this](peer_atom, caf::actor& peer) { peer_ = std::move(peer); },
    };
  }

  void on_exit() override {
    peer_ = nullptr;
  }

private:
  pinger_logic logic_;
  caf::actor peer_;
};

class caf_ponger : public caf::event_based_actor {
public:
  caf_ponger(caf::actor_config& cfg, caf::actor pinger)
    : event_based_actor(cfg), pinger_(std::move(pinger)) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](const mb::ping& x) { send(pinger_, mb::pong{x.seq, x.payload}); },
    };
  }

  void on_exit() override {
    pinger_ = nullptr;
  }

private:
  caf::actor pinger_;
};

// -- latency: bus pair (mycelium services) -------------------------------------------

class bus_pinger : public mycelium::service {
public:
  bus_pinger(caf::actor_config& cfg, mycelium::service_context ctx, lat_job* job)
    : service(cfg, std::move(ctx)), logic_{job} {
  }

  void on_start() override {
    // Hot handler first: handlers are matched in subscription order.
    subscribe<mb::pong>([this](const mb::pong& x) {
      logic_.on_pong(x, [this](mb::ping&& y) { emit(std::move(y)); });
    });
    subscribe<mb::lat_start>([this](const mb::lat_start&) {
      logic_.start([this](mb::ping&& y) { emit(std::move(y)); });
    });
  }

private:
  void emit(mb::ping&& x) {
    if (publish(std::move(x)) != mycelium::publish_status::ok)
      ++logic_.job->errors;
  }

  pinger_logic logic_;
};

class bus_ponger : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    subscribe<mb::ping>([this](const mb::ping& x) {
      publish(mb::pong{x.seq, x.payload});
    });
  }
};

// -- latency: loop paths (everything on the node's I/O loop thread) -------------------

/// bus-loop's ponger: bus_ponger plus the timer read at its handler's entry
/// (for the split into one-way hops; the pinger runs on the same thread).
class bus_loop_ponger : public mycelium::service {
public:
  bus_loop_ponger(caf::actor_config& cfg, mycelium::service_context ctx, lat_job* job)
    : service(cfg, std::move(ctx)), job_(job) {
  }

  void on_start() override {
    subscribe<mb::ping>([this](const mb::ping& x) {
      job_->stamp = ticks();
      publish(mb::pong{x.seq, x.payload});
    });
  }

private:
  lat_job* job_;
};

/// caf-loop: CAF's own `send` between two actors that the multiplexer (the
/// same I/O loop) resumes, as it resumes brokers; what a loop service's
/// message costs without the bus's direct call.
class loop_caf_pinger : public caf::io::broker {
public:
  loop_caf_pinger(caf::actor_config& cfg, lat_job* job) : broker(cfg), logic_{job} {
  }

  caf::behavior make_behavior() override {
    auto snd = [this](mb::ping&& x) { send(peer_, std::move(x)); };
    return {
      [this, snd](const mb::pong& x) { logic_.on_pong(x, snd); },
      [this, snd](start_atom) { logic_.start(snd); },
      [this](peer_atom, caf::actor& peer) { peer_ = std::move(peer); },
    };
  }

  void on_exit() override {
    peer_ = nullptr;
  }

private:
  pinger_logic logic_;
  caf::actor peer_;
};

class loop_caf_ponger : public caf::io::broker {
public:
  loop_caf_ponger(caf::actor_config& cfg, lat_job* job, caf::actor pinger)
    : broker(cfg), job_(job), pinger_(std::move(pinger)) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](const mb::ping& x) {
        job_->stamp = ticks();
        send(pinger_, mb::pong{x.seq, x.payload});
      },
    };
  }

  void on_exit() override {
    pinger_ = nullptr;
  }

private:
  lat_job* job_;
  caf::actor pinger_;
};

/// call: the floor of a hop on one thread. The same pinger logic and the
/// same user work per hop (a message whose payload is a copy), but each hop
/// is an indirect call through a std::function instead of a publish. A
/// trampoline breaks the recursion: the pinger's next ping is handed to the
/// ponger after the current call chain returned. Runs inside a broker on the
/// I/O loop, so that the thread and CPU are those of the bus-loop path.
class loop_call_driver : public caf::io::broker {
public:
  loop_call_driver(caf::actor_config& cfg, lat_job* job) : broker(cfg), logic_{job} {
    to_ponger_ = [this](const mb::ping& x) {
      logic_.job->stamp = ticks();
      to_pinger_(mb::pong{x.seq, x.payload});
    };
    to_pinger_ = [this](const mb::pong& x) { logic_.on_pong(x, park()); };
  }

  caf::behavior make_behavior() override {
    return {
      [this](start_atom) {
        logic_.start(park());
        while (has_next_) {
          has_next_ = false;
          auto x = std::move(next_);
          to_ponger_(x);
        }
      },
    };
  }

private:
  /// The pinger's `send`: parks the next ping for the trampoline.
  struct parker {
    loop_call_driver* self;
    void operator()(mb::ping&& x) const {
      self->next_ = std::move(x);
      self->has_next_ = true;
    }
  };

  parker park() {
    return parker{this};
  }

  pinger_logic logic_;
  std::function<void(const mb::ping&)> to_ponger_;
  std::function<void(const mb::pong&)> to_pinger_;
  mb::ping next_;
  bool has_next_ = false;
};

// -- fan-out: shared job description ---------------------------------------------

struct fan_job {
  uint64_t n = 0;
  uint64_t batch = 1000;
  uint64_t window = 4;
  uint32_t subs = 1;
  std::vector<uint8_t> payload;
  // results of the last round
  int64_t elapsed_ns = 0;
  uint64_t published = 0;
  uint64_t publish_allocs = 0;
  std::vector<uint64_t> obj_addr;
  std::vector<uint64_t> data_addr;
  std::vector<uint64_t> counts;
  std::vector<uint64_t> drained;
  uint64_t errors = 0;
  std::promise<void> done;
};

/// Publisher logic shared by all variants: windowed flow control on the
/// subscribers' acks; `Emit(seq)` publishes one tick.
struct fan_driver {
  fan_job* job;
  std::vector<uint64_t> acked;
  uint64_t sent = 0;
  int64_t t0 = 0;

  void start() {
    acked.assign(job->subs, 0);
    job->obj_addr.assign(job->subs, 0);
    job->data_addr.assign(job->subs, 0);
    job->counts.assign(job->subs, 0);
    job->drained.assign(job->subs, 0);
    job->published = 0;
    job->publish_allocs = 0;
    sent = 0;
    t0 = now_ns();
  }

  uint64_t min_acked() const {
    return *std::min_element(acked.begin(), acked.end());
  }

  template <class Emit>
  void pump(Emit emit) {
    auto lim = std::min<uint64_t>(job->n, min_acked() + job->window * job->batch);
    if (sent >= lim)
      return;
    auto a0 = tl_allocs;
    for (; sent < lim; ++sent)
      emit(sent);
    job->publish_allocs += tl_allocs - a0;
    job->published = sent;
  }

  /// Returns true when the round is complete.
  bool on_ack(const mb::ack& a) {
    if (a.subscriber >= acked.size() || a.count > job->n) {
      ++job->errors;
      return false;
    }
    acked[a.subscriber] = a.count;
    if (a.count == job->n) {
      job->counts[a.subscriber] = a.count;
      job->obj_addr[a.subscriber] = a.obj_addr;
      job->data_addr[a.subscriber] = a.data_addr;
      job->drained[a.subscriber] = a.drained;
      if (min_acked() == job->n) {
        job->elapsed_ns = now_ns() - t0;
        job->done.set_value();
        return true;
      }
    }
    return false;
  }
};

/// Subscriber logic shared by all variants.
struct fan_counter {
  fan_job* job;
  uint32_t id;
  uint64_t count = 0;
  uint64_t obj = 0;
  uint64_t data = 0;
  uint64_t drained = 0;
  uint64_t sink = 0;

  /// Returns true when an ack is due. `mailbox_empty`: nothing else is
  /// waiting, so the next tick has to reschedule this subscriber.
  bool on_tick(const mb::tick& t, bool mailbox_empty) {
    if (t.seq == 0) {
      count = 0;
      drained = 0;
      obj = addr_of(&t);
      data = addr_of(t.payload.data());
    }
    sink += t.payload.empty() ? 0 : t.payload[0]; // touch the payload
    ++count;
    if (mailbox_empty)
      ++drained;
    return count % job->batch == 0 || count == job->n;
  }

  mb::ack make_ack() const {
    return mb::ack{id, count, obj, data, drained};
  }
};

// -- fan-out: raw CAF ----------------------------------------------------------------

enum class fan_variant { caf_shared, caf_copy, bus };

const char* name_of(fan_variant v) {
  switch (v) {
    case fan_variant::caf_shared: return "caf-shared";
    case fan_variant::caf_copy: return "caf-copy";
    default: return "bus";
  }
}

class caf_fan_pub : public caf::event_based_actor {
public:
  caf_fan_pub(caf::actor_config& cfg, fan_job* job, bool shared)
    : event_based_actor(cfg), drv_{job, {}}, shared_(shared) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](const mb::ack& a) {
        if (!drv_.on_ack(a))
          pump();
      },
      [this](start_atom) {
        drv_.start();
        pump();
      },
      [this](peer_atom, std::vector<caf::actor>& subs) { subs_ = std::move(subs); },
    };
  }

  void on_exit() override {
    subs_.clear();
  }

private:
  void pump() {
    auto* job = drv_.job;
    if (shared_) {
      // One caf::message shared by all receivers (what the bus does).
      drv_.pump([&](uint64_t seq) {
        auto msg = caf::make_message(mb::tick{seq, job->payload});
        for (auto& d : subs_)
          send(d, msg);
      });
    } else {
      // Plain `send(dest, value)`: CAF copies the value into every mailbox
      // element (the idiomatic CAF fan-out).
      drv_.pump([&](uint64_t seq) {
        mb::tick t{seq, job->payload};
        for (auto& d : subs_)
          send(d, t);
      });
    }
  }

  fan_driver drv_;
  bool shared_;
  std::vector<caf::actor> subs_;
};

class caf_fan_sub : public caf::event_based_actor {
public:
  caf_fan_sub(caf::actor_config& cfg, fan_job* job, uint32_t id, caf::actor pub)
    : event_based_actor(cfg), ctr_{job, id}, pub_(std::move(pub)) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](const mb::tick& t) {
        if (ctr_.on_tick(t, mailbox().empty()))
          send(pub_, ctr_.make_ack());
      },
    };
  }

  void on_exit() override {
    pub_ = nullptr;
  }

private:
  fan_counter ctr_;
  caf::actor pub_;
};

// -- fan-out: bus -------------------------------------------------------------------

class bus_fan_pub : public mycelium::service {
public:
  bus_fan_pub(caf::actor_config& cfg, mycelium::service_context ctx, fan_job* job)
    : service(cfg, std::move(ctx)), drv_{job, {}} {
  }

  void on_start() override {
    subscribe<mb::ack>([this](const mb::ack& a) {
      if (!drv_.on_ack(a))
        pump();
    });
    subscribe<mb::fan_start>([this](const mb::fan_start&) {
      drv_.start();
      pump();
    });
  }

private:
  void pump() {
    drv_.pump([this](uint64_t seq) {
      if (publish(mb::tick{seq, drv_.job->payload}) != mycelium::publish_status::ok)
        ++drv_.job->errors;
    });
  }

  fan_driver drv_;
};

class bus_fan_sub : public mycelium::service {
public:
  bus_fan_sub(caf::actor_config& cfg, mycelium::service_context ctx, fan_job* job,
              uint32_t id)
    : service(cfg, std::move(ctx)), ctr_{job, id} {
  }

  void on_start() override {
    subscribe<mb::tick>([this](const mb::tick& t) {
      if (ctr_.on_tick(t, mailbox().empty()))
        publish(ctr_.make_ack());
    });
  }

private:
  fan_counter ctr_;
};

// -- statistics -----------------------------------------------------------------------

struct hop_stats {
  uint64_t round_trips = 0;
  double median = 0, p99 = 0, p999 = 0, max = 0, mean = 0; // one-way ns
  double hops_per_s = 0;
};

hop_stats make_hop_stats(std::vector<uint32_t> rtt, int64_t total_ns) {
  hop_stats s;
  std::sort(rtt.begin(), rtt.end());
  s.round_trips = rtt.size();
  s.median = pct(rtt, 0.5) / 2.0;
  s.p99 = pct(rtt, 0.99) / 2.0;
  s.p999 = pct(rtt, 0.999) / 2.0;
  s.max = rtt.empty() ? 0 : rtt.back() / 2.0;
  double sum = 0;
  for (auto x : rtt)
    sum += x;
  s.mean = rtt.empty() ? 0 : sum / static_cast<double>(rtt.size()) / 2.0;
  s.hops_per_s = total_ns > 0 ? 2.0 * static_cast<double>(rtt.size()) * 1e9
                                  / static_cast<double>(total_ns)
                              : 0;
  return s;
}

/// The latency paths, in the order they are printed.
const std::vector<std::string> all_lat_paths{"caf", "bus", "call", "caf-loop", "bus-loop"};

bool on_loop(const std::string& path) {
  return path == "call" || path == "caf-loop" || path == "bus-loop";
}

/// Stats of one-way samples (no halving); hops_per_s stays 0.
hop_stats make_oneway_stats(std::vector<uint32_t> v) {
  auto s = make_hop_stats(std::move(v), 0);
  s.median *= 2;
  s.p99 *= 2;
  s.p999 *= 2;
  s.max *= 2;
  s.mean *= 2;
  return s;
}

struct lat_path_result {
  std::string name;
  hop_stats hop;
  uint64_t cpu_changes = 0;
  bool split = false;
  hop_stats fwd, back; // split paths: one-way ping / pong hops (not halved)
};

struct lat_result {
  size_t size = 0;
  std::vector<lat_path_result> paths;
  uint64_t errors = 0;
  const lat_path_result* get(const std::string& n) const {
    for (auto& p : paths)
      if (p.name == n)
        return &p;
    return nullptr;
  }
  /// Ratio of the medians a/b (0 when either path did not run).
  double ratio(const std::string& a, const std::string& b) const {
    auto* x = get(a);
    auto* y = get(b);
    return x && y && y->hop.median > 0 ? x->hop.median / y->hop.median : 0;
  }
  /// bus (pool) over raw CAF send.
  double ratio() const { return ratio("bus", "caf"); }
};

struct fan_variant_result {
  fan_variant v;
  uint64_t published = 0;
  uint64_t deliveries = 0;
  int64_t total_ns = 0;
  std::vector<double> round_rates; // deliveries/s per round
  uint64_t publish_allocs = 0;
  uint64_t drained = 0;     // ticks after which a subscriber's mailbox was empty
  bool same_object = true;  // all subscribers saw tick #0 at one address
  bool same_data = true;    // ... and its payload bytes at one address
  bool counts_ok = true;
  uint64_t errors = 0;
  uint64_t example_addr = 0;

  /// Median over the timed rounds (robust against a co-tenant's burst).
  double deliveries_per_s() const {
    if (round_rates.empty())
      return 0;
    auto v = round_rates;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }
  double publishes_per_s() const {
    return deliveries ? deliveries_per_s() * static_cast<double>(published)
                          / static_cast<double>(deliveries)
                      : 0;
  }
  /// All timed rounds together: total deliveries / total time.
  double aggregate_deliveries_per_s() const {
    return total_ns > 0 ? static_cast<double>(deliveries) * 1e9 / static_cast<double>(total_ns) : 0;
  }
  double min_round() const {
    return round_rates.empty() ? 0 : *std::min_element(round_rates.begin(), round_rates.end());
  }
  double max_round() const {
    return round_rates.empty() ? 0 : *std::max_element(round_rates.begin(), round_rates.end());
  }
  double drained_share() const {
    return deliveries ? static_cast<double>(drained) / static_cast<double>(deliveries) : 0;
  }
  double allocs_per_publish() const {
    return published ? static_cast<double>(publish_allocs) / static_cast<double>(published) : 0;
  }
};

struct fan_result {
  uint32_t subs = 0;
  std::vector<fan_variant_result> variants;
  const fan_variant_result& get(fan_variant v) const {
    for (auto& x : variants)
      if (x.v == v)
        return x;
    return variants.front();
  }
};

struct config_result {
  std::string name;
  sched_info sched;
  std::vector<lat_result> latency;
  std::vector<fan_result> fanout;
  double seconds = 0;
};

// -- helpers ----------------------------------------------------------------------------
double clock_overhead_ns() {
  constexpr int n = 1000000;
  int64_t sink = 0;
  auto t0 = now_ns();
  for (int i = 0; i < n; ++i)
    sink += ticks();
  auto t1 = now_ns();
  if (sink == 42)
    std::puts("");
  return static_cast<double>(t1 - t0) / n;
}

/// Most common non-zero difference of two back-to-back timer reads, in ns:
/// the effective resolution of one round-trip sample (VMs often step the
/// TSC/clock in coarse increments).
double timer_step_ns() {
  std::map<int64_t, int> hist;
  for (int i = 0; i < 20000; ++i) {
    auto a = ticks();
    auto b = ticks();
    if (b > a)
      ++hist[b - a];
  }
  int64_t best = 0;
  int count = 0;
  for (auto& [d, c] : hist)
    if (c > count) {
      best = d;
      count = c;
    }
  return static_cast<double>(best) * (g_tsc ? g_ns_per_tick : 1.0);
}

void configure(caf::actor_system_config& cfg, const options& opt, bool tuned) {
  // CAF's middleman with Mycelium's I/O loop: the loop paths run on its
  // thread (idle in epoll while the pool paths run).
  mycelium::transports::load_io_loop(cfg);
  mb::add_message_types(cfg);
  cfg.set("scheduler.policy", caf::atom("stealing"));
  cfg.set("scheduler.max-threads", static_cast<int64_t>(opt.threads));
  if (tuned) {
    // CAF 0.17 workers that found no work for `aggressive-poll-attempts`
    // polls sleep `moderate-sleep-duration` (default 50 us) between polls and
    // are NOT woken by new work; spin longer and never sleep in that phase.
    cfg.set("work-stealing.aggressive-poll-attempts", opt.ws_aggressive_polls);
    cfg.set("work-stealing.moderate-sleep-duration",
            caf::timespan{opt.ws_moderate_sleep_ns});
    cfg.set("work-stealing.relaxed-sleep-duration",
            caf::timespan{opt.ws_relaxed_sleep_us * 1000});
  }
}

std::string ns_text(int64_t ns) {
  if (ns >= 1000000 && ns % 1000000 == 0)
    return fmt::format("{} ms", ns / 1000000);
  if (ns >= 1000 && ns % 1000 == 0)
    return fmt::format("{} us", ns / 1000);
  return fmt::format("{} ns", ns);
}

void print_sched(const std::string& name, const sched_info& s) {
  fmt::print("actor system '{}': scheduler.policy={} scheduler.max-threads={} "
             "(workers={}) scheduler.max-throughput={}\n",
             name, s.policy, s.max_threads, s.workers,
             s.max_throughput < 0 ? std::string{"unlimited"} : std::to_string(s.max_throughput));
  fmt::print("  work-stealing: aggressive-poll-attempts={} aggressive-steal-interval={} "
             "moderate-poll-attempts={} moderate-steal-interval={} "
             "moderate-sleep-duration={} relaxed-steal-interval={} "
             "relaxed-sleep-duration={}\n",
             s.aggressive_poll_attempts, s.aggressive_steal_interval,
             s.moderate_poll_attempts, s.moderate_steal_interval,
             ns_text(s.moderate_sleep_ns), s.relaxed_steal_interval,
             ns_text(s.relaxed_sleep_ns));
}

// -- latency runner ------------------------------------------------------------------

/// One latency path: its job and how to run one round of it.
struct lat_path {
  std::string name;
  lat_job job;
  std::function<void()> start; // sends the start message
};

void fail_start(caf::actor_system& sys, const char* what, const caf::error& err) {
  fmt::print(stderr, "cannot start {}: {}\n", what, sys.render(err));
  std::exit(1);
}

std::vector<lat_result> run_latency(caf::actor_system& sys, const options& opt) {
  auto wants = [&](const char* p) {
    return std::find(opt.paths.begin(), opt.paths.end(), p) != opt.paths.end();
  };
  std::vector<lat_result> out;
  std::vector<std::unique_ptr<lat_path>> paths;
  auto add = [&](const char* name) -> lat_path& {
    auto& p = *paths.emplace_back(std::make_unique<lat_path>());
    p.name = name;
    p.job.split = on_loop(name);
    return p;
  };
  std::vector<caf::actor> raw_actors; // sent an exit at the end
  // caf: raw CAF pair on the worker pool
  if (wants("caf")) {
    auto& p = add("caf");
    auto a = sys.spawn<caf_pinger>(&p.job);
    auto b = sys.spawn<caf_ponger>(a);
    caf::anon_send(a, peer_atom::value, b);
    raw_actors.insert(raw_actors.end(), {a, b});
    p.start = [a] { caf::anon_send(a, start_atom::value); };
  }
  // bus: two services on the worker pool (placement pool)
  mycelium::node nd{sys, "bench-latency"};
  uint64_t round_no = 0;
  if (wants("bus")) {
    auto& p = add("bus");
    auto pinger_factory = [job = &p.job](caf::actor_system& s, mycelium::service_context ctx) {
      return s.spawn<bus_pinger>(std::move(ctx), job);
    };
    auto ponger_factory = [](caf::actor_system& s, mycelium::service_context ctx) {
      return s.spawn<bus_ponger>(std::move(ctx));
    };
    if (auto r = nd.start(ponger_factory, "ponger"); !r)
      fail_start(sys, "ponger", r.error());
    if (auto r = nd.start(pinger_factory, "pinger"); !r)
      fail_start(sys, "pinger", r.error());
    p.start = [&nd, &round_no] { nd.publish(mb::lat_start{round_no++}); };
  }
  // On the I/O loop: every actor below is resumed by the middleman's thread.
  caf::actor_config loop_cfg{&sys.middleman().backend()};
  if (wants("call")) {
    auto& p = add("call");
    auto d = sys.spawn_class<loop_call_driver, caf::no_spawn_options>(loop_cfg, &p.job);
    raw_actors.push_back(d);
    p.start = [d] { caf::anon_send(d, start_atom::value); };
  }
  if (wants("caf-loop")) {
    auto& p = add("caf-loop");
    auto a = sys.spawn_class<loop_caf_pinger, caf::no_spawn_options>(loop_cfg, &p.job);
    caf::actor_config cfg_b{&sys.middleman().backend()};
    auto b = sys.spawn_class<loop_caf_ponger, caf::no_spawn_options>(cfg_b, &p.job, a);
    caf::anon_send(a, peer_atom::value, b);
    raw_actors.insert(raw_actors.end(), {a, b});
    p.start = [a] { caf::anon_send(a, start_atom::value); };
  }
  // bus-loop: two services placed on the loop, in a node of their own. The
  // start message comes from main through the pinger's mailbox; from then on
  // every publish happens on the loop thread: a ping reaches the idle
  // ponger as a direct call, a pong finds the pinger still inside its
  // handler and goes through its mailbox (drained in the same resume).
  mycelium::node nd_loop{sys, "bench-latency-loop"};
  uint64_t loop_round_no = 0;
  if (wants("bus-loop")) {
    auto& p = add("bus-loop");
    auto pinger_factory = [job = &p.job](caf::actor_system& s, mycelium::service_context ctx) {
      return s.spawn<bus_pinger>(std::move(ctx), job);
    };
    auto ponger_factory = [job = &p.job](caf::actor_system& s, mycelium::service_context ctx) {
      return s.spawn<bus_loop_ponger>(std::move(ctx), job);
    };
    if (auto r = nd_loop.start(ponger_factory, "ponger", {}, {}, mycelium::placement::loop); !r)
      fail_start(sys, "loop ponger", r.error());
    if (auto r = nd_loop.start(pinger_factory, "pinger", {}, {}, mycelium::placement::loop); !r)
      fail_start(sys, "loop pinger", r.error());
    p.start = [&nd_loop, &loop_round_no] { nd_loop.publish(mb::lat_start{loop_round_no++}); };
  }
  auto run = [](lat_path& p, size_t n, bool record) {
    p.job.n = n;
    p.job.record = record;
    p.job.done = std::promise<void>{};
    auto f = p.job.done.get_future();
    p.start();
    f.wait();
    return p.job.elapsed_ns;
  };
  for (auto size : opt.sizes) {
    std::vector<uint8_t> payload(size);
    for (size_t i = 0; i < size; ++i)
      payload[i] = static_cast<uint8_t>(i * 131 + 7);
    for (auto& p : paths) {
      auto& j = p->job;
      j.payload = payload;
      j.samples.clear();
      j.samples.reserve(opt.rounds * opt.round_trips);
      j.fwd.clear();
      j.back.clear();
      if (j.split) {
        j.fwd.reserve(opt.rounds * opt.round_trips);
        j.back.reserve(opt.rounds * opt.round_trips);
      }
      j.errors = 0;
      j.cpu_changes = 0;
    }
    for (auto& p : paths)
      run(*p, opt.warmup, false);
    std::vector<int64_t> elapsed(paths.size(), 0);
    for (size_t r = 0; r < opt.rounds; ++r)
      for (size_t q = 0; q < paths.size(); ++q) {
        auto k = (q + r) % paths.size(); // rotate the order every round
        elapsed[k] += run(*paths[k], opt.round_trips, true);
      }
    lat_result res;
    res.size = size;
    std::string line;
    for (size_t k = 0; k < paths.size(); ++k) {
      auto& j = paths[k]->job;
      lat_path_result pr;
      pr.name = paths[k]->name;
      pr.hop = make_hop_stats(j.samples, elapsed[k]);
      pr.cpu_changes = j.cpu_changes;
      pr.split = j.split;
      if (j.split) {
        pr.fwd = make_oneway_stats(j.fwd);
        pr.back = make_oneway_stats(j.back);
      }
      res.errors += j.errors;
      line += fmt::format(" {} {:.0f}", pr.name, pr.hop.median);
      res.paths.push_back(std::move(pr));
    }
    fmt::print("  latency {:>7}: median one-way hop, ns:{}; bus/caf {:.3f}, bus-loop/call "
               "{:.3f}, bus-loop/caf-loop {:.3f}{}\n",
               human_size(size), line, res.ratio(), res.ratio("bus-loop", "call"),
               res.ratio("bus-loop", "caf-loop"),
               res.errors ? fmt::format(", {} ERRORS", res.errors) : std::string{});
    std::fflush(stdout);
    out.push_back(res);
  }
  nd.stop();
  nd_loop.stop();
  for (auto& a : raw_actors)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  return out;
}

// -- fan-out runner -----------------------------------------------------------------------

fan_result run_fanout(caf::actor_system& sys, const options& opt, uint32_t subs) {
  fan_result res;
  res.subs = subs;
  std::vector<uint8_t> payload(opt.fan_payload);
  for (size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<uint8_t>(i + 1);
  auto init_job = [&](fan_job& j) {
    j.n = opt.fan_msgs;
    j.batch = opt.fan_batch;
    j.window = opt.fan_window;
    j.subs = subs;
    j.payload = payload;
  };
  fan_job shared_job, copy_job, bus_job;
  init_job(shared_job);
  init_job(copy_job);
  init_job(bus_job);
  // raw CAF publishers and subscribers
  std::vector<caf::actor> all_raw;
  auto make_raw = [&](fan_job& job, bool shared) {
    auto pub = sys.spawn<caf_fan_pub>(&job, shared);
    std::vector<caf::actor> ss;
    for (uint32_t i = 0; i < subs; ++i)
      ss.push_back(sys.spawn<caf_fan_sub>(&job, i, pub));
    all_raw.insert(all_raw.end(), ss.begin(), ss.end());
    all_raw.push_back(pub);
    caf::anon_send(pub, peer_atom::value, std::move(ss));
    return pub;
  };
  auto shared_pub = make_raw(shared_job, true);
  auto copy_pub = make_raw(copy_job, false);
  // bus publisher and subscribers
  mycelium::node nd{sys, fmt::format("bench-fanout-{}", subs)};
  for (uint32_t i = 0; i < subs; ++i) {
    auto r = nd.start(
      [job = &bus_job, i](caf::actor_system& s, mycelium::service_context ctx) {
        return s.spawn<bus_fan_sub>(std::move(ctx), job, i);
      },
      fmt::format("sub-{}", i));
    if (!r) {
      fmt::print(stderr, "cannot start subscriber: {}\n", sys.render(r.error()));
      std::exit(1);
    }
  }
  if (auto r = nd.start(
        [job = &bus_job](caf::actor_system& s, mycelium::service_context ctx) {
          return s.spawn<bus_fan_pub>(std::move(ctx), job);
        },
        "publisher");
      !r) {
    fmt::print(stderr, "cannot start publisher: {}\n", sys.render(r.error()));
    std::exit(1);
  }
  uint64_t round_no = 0;
  auto run_one = [&](fan_variant v) -> fan_job& {
    fan_job& job = v == fan_variant::caf_shared ? shared_job
                   : v == fan_variant::caf_copy ? copy_job
                                                 : bus_job;
    job.done = std::promise<void>{};
    auto f = job.done.get_future();
    switch (v) {
      case fan_variant::caf_shared: caf::anon_send(shared_pub, start_atom::value); break;
      case fan_variant::caf_copy: caf::anon_send(copy_pub, start_atom::value); break;
      default: nd.publish(mb::fan_start{round_no++});
    }
    f.wait();
    return job;
  };
  const fan_variant order[] = {fan_variant::caf_shared, fan_variant::bus,
                               fan_variant::caf_copy};
  for (auto v : order)
    res.variants.push_back(fan_variant_result{v, 0, 0, 0, {}});
  // warm-up: one round each (not recorded)
  for (auto v : order)
    run_one(v);
  for (size_t r = 0; r < opt.fan_rounds; ++r) {
    for (size_t k = 0; k < 3; ++k) {
      auto v = order[(k + r) % 3]; // rotate the order every round
      auto& job = run_one(v);
      auto& vr = *std::find_if(res.variants.begin(), res.variants.end(),
                               [v](auto& x) { return x.v == v; });
      vr.published += job.published;
      vr.deliveries += job.published * subs;
      vr.total_ns += job.elapsed_ns;
      vr.round_rates.push_back(static_cast<double>(job.published * subs) * 1e9
                               / static_cast<double>(job.elapsed_ns));
      vr.publish_allocs += job.publish_allocs;
      for (auto d : job.drained)
        vr.drained += d;
      vr.errors += job.errors;
      for (uint32_t i = 0; i < subs; ++i) {
        vr.counts_ok = vr.counts_ok && job.counts[i] == job.n;
        vr.same_object = vr.same_object && job.obj_addr[i] == job.obj_addr[0];
        vr.same_data = vr.same_data && job.data_addr[i] == job.data_addr[0];
      }
      vr.example_addr = job.obj_addr[0];
    }
  }
  nd.stop();
  for (auto& a : all_raw)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  auto& b = res.get(fan_variant::bus);
  auto& s = res.get(fan_variant::caf_shared);
  fmt::print("  fan-out {:>2} subscriber(s): bus {} deliveries/s, caf-shared {} deliveries/s, "
             "ratio {:.3f}; bus payload shared by all subscribers: {}\n",
             subs, rate(b.deliveries_per_s()), rate(s.deliveries_per_s()),
             s.deliveries_per_s() > 0 ? b.deliveries_per_s() / s.deliveries_per_s() : 0.0,
             b.same_object && b.same_data ? "yes" : "NO");
  std::fflush(stdout);
  return res;
}

// -- output ---------------------------------------------------------------------------------

void print_tables(const options& opt, const config_result& c) {
  if (!c.latency.empty()) {
    fmt::print("\nLATENCY, config '{}' ({} worker threads): one-way hop = RTT/2, derived "
               "from {} timed round trips per path and size\n",
               c.name, c.sched.workers, opt.rounds * opt.round_trips);
    fmt::print("{:>7} {:>8} | {:>9} {:>9} {:>9} {:>10} | {:>10} | {:>8} | {}\n", "size",
               "path", "median ns", "p99 ns", "p99.9 ns", "max ns", "hops/s",
               "cpu chg", "ratio of medians");
    fmt::print("{}\n", std::string(112, '-'));
    for (auto& r : c.latency) {
      for (auto& p : r.paths) {
        auto& s = p.hop;
        std::string ratio;
        if (p.name == "bus" && r.get("caf"))
          ratio = fmt::format("bus/caf {:.3f}", r.ratio("bus", "caf"));
        if (p.name == "bus-loop") {
          if (r.get("call"))
            ratio += fmt::format("/call {:.3f}", r.ratio("bus-loop", "call"));
          if (r.get("caf-loop"))
            ratio += fmt::format("  /caf-loop {:.3f}", r.ratio("bus-loop", "caf-loop"));
          if (r.get("caf"))
            ratio += fmt::format("  /caf {:.3f}", r.ratio("bus-loop", "caf"));
        }
        fmt::print("{:>7} {:>8} | {:>9.0f} {:>9.0f} {:>9.0f} {:>10.0f} | {:>10} | {:>7.2f}% | "
                   "{}\n",
                   human_size(r.size), p.name, s.median, s.p99, s.p999, s.max,
                   rate(s.hops_per_s),
                   s.round_trips ? 100.0 * static_cast<double>(p.cpu_changes)
                                     / static_cast<double>(s.round_trips)
                                 : 0.0,
                   ratio);
      }
    }
    fmt::print("(cpu chg: share of round trips whose pong was handled on another CPU than "
               "the previous one, i.e. the pair moved between workers; caf and bus run on "
               "the worker pool, call, caf-loop and bus-loop on the I/O loop's thread)\n");
    bool any_split = false;
    for (auto& r : c.latency)
      for (auto& p : r.paths)
        any_split = any_split || p.split;
    if (any_split) {
      fmt::print("\nLOOP PATHS SPLIT INTO ONE-WAY HOPS, config '{}' (one thread, one clock; "
                 "NOT halved): ping = pinger's send -> ponger's handler entry, pong = "
                 "ponger's handler entry -> pinger's handler entry (includes building the "
                 "pong)\n",
                 c.name);
      fmt::print("{:>7} {:>8} | {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10}\n", "size", "path",
                 "ping med", "ping p99", "ping p99.9", "pong med", "pong p99", "pong p99.9");
      fmt::print("{}\n", std::string(88, '-'));
      for (auto& r : c.latency)
        for (auto& p : r.paths)
          if (p.split)
            fmt::print("{:>7} {:>8} | {:>10.0f} {:>10.0f} {:>10.0f} | {:>10.0f} {:>10.0f} "
                       "{:>10.0f}\n",
                       human_size(r.size), p.name, p.fwd.median, p.fwd.p99, p.fwd.p999,
                       p.back.median, p.back.p99, p.back.p999);
    }
  }
  if (!c.fanout.empty()) {
    fmt::print("\nFAN-OUT THROUGHPUT, config '{}': {} messages of {} B per round, {} rounds "
               "per variant (alternating); rates are medians over the rounds\n",
               c.name, opt.fan_msgs, opt.fan_payload, opt.fan_rounds);
    fmt::print("{:>4} {:>10} | {:>12} {:>12} | {:>17} | {:>7} | {:>14} | {:>7} | {:>13}\n",
               "subs", "path", "publishes/s", "deliveries/s", "rounds min..max", "drained",
               "allocs/publish", "payload", "vs caf-shared");
    fmt::print("{}\n", std::string(118, '-'));
    for (auto& f : c.fanout) {
      auto base = f.get(fan_variant::caf_shared).deliveries_per_s();
      for (auto& v : f.variants) {
        fmt::print("{:>4} {:>10} | {:>12} {:>12} | {:>17} | {:>6.1f}% | {:>14.2f} | {:>7} | {:>13}\n",
                   f.subs, name_of(v.v), rate(v.publishes_per_s()),
                   rate(v.deliveries_per_s()),
                   fmt::format("{:.2f}..{:.2f} M", v.min_round() / 1e6, v.max_round() / 1e6),
                   100.0 * v.drained_share(),
                   v.allocs_per_publish(),
                   f.subs == 1 ? "n/a" : (v.same_object && v.same_data ? "shared" : "copied"),
                   base > 0 ? fmt::format("{:.3f}", v.deliveries_per_s() / base)
                            : std::string{"-"});
        if (!v.counts_ok || v.errors)
          fmt::print("     !! {}: counts_ok={} errors={}\n", name_of(v.v), v.counts_ok,
                     v.errors);
      }
    }
    fmt::print("(drained: share of deliveries after which the subscriber's mailbox was empty, "
               "so the next message had to reschedule it)\n");
  }
}

std::string json_hop(const hop_stats& s) {
  return fmt::format("{{\"round_trips\": {}, \"median_ns\": {:.1f}, \"p99_ns\": {:.1f}, "
                     "\"p999_ns\": {:.1f}, \"max_ns\": {:.1f}, \"mean_ns\": {:.1f}, "
                     "\"hops_per_s\": {:.0f}}}",
                     s.round_trips, s.median, s.p99, s.p999, s.max, s.mean, s.hops_per_s);
}

void write_json(const options& opt, const std::vector<config_result>& all,
                double clock_ns, const std::string& timer_text, const std::string& started, const std::string& load0,
                double total_s) {
  std::ostringstream o;
  o << "{\n  \"benchmark\": \"mycelium-bench-inprocess\",\n";
  o << "  \"started\": " << json_str(started) << ",\n";
  o << "  \"duration_s\": " << fmt::format("{:.1f}", total_s) << ",\n";
  o << "  \"latency_unit\": \"one-way hop in ns = round-trip time / 2 (the *_oneway "
       "entries of the loop paths: measured one-way, not halved)\",\n";
  o << "  \"machine\": {" << json_machine_fields()
    << ", \"loadavg_at_start\": " << json_str(load0)
    << ", \"loadavg_at_end\": " << json_str(loadavg())
    << ", \"timer\": " << json_str(timer_text)
    << ", \"timer_read_ns\": " << fmt::format("{:.1f}", clock_ns) << "},\n";
  o << "  \"options\": {\"sizes\": [";
  for (size_t i = 0; i < opt.sizes.size(); ++i)
    o << (i ? ", " : "") << opt.sizes[i];
  o << "], \"rounds\": " << opt.rounds << ", \"round_trips_per_round\": " << opt.round_trips
    << ", \"warmup\": " << opt.warmup << ", \"threads\": " << opt.threads
    << ", \"paths\": [" << [&] {
         std::string t;
         for (size_t i = 0; i < opt.paths.size(); ++i)
           t += (i ? ", " : "") + json_str(opt.paths[i]);
         return t;
       }() << "]"
    << ", \"middleman\": \"io_loop (mycelium::transports::load_io_loop)\""
    << ", \"fanout_messages\": " << opt.fan_msgs << ", \"fanout_rounds\": " << opt.fan_rounds
    << ", \"fanout_batch\": " << opt.fan_batch << ", \"fanout_window\": " << opt.fan_window
    << ", \"fanout_payload\": " << opt.fan_payload << "},\n";
  o << "  \"configs\": [\n";
  for (size_t ci = 0; ci < all.size(); ++ci) {
    auto& c = all[ci];
    auto& s = c.sched;
    o << "    {\"name\": " << json_str(c.name) << ", \"seconds\": "
      << fmt::format("{:.1f}", c.seconds) << ",\n";
    o << "     \"scheduler\": {\"policy\": " << json_str(s.policy)
      << ", \"max_threads\": " << s.max_threads << ", \"workers\": " << s.workers
      << ", \"max_throughput\": " << s.max_throughput
      << ", \"aggressive_poll_attempts\": " << s.aggressive_poll_attempts
      << ", \"aggressive_steal_interval\": " << s.aggressive_steal_interval
      << ", \"moderate_poll_attempts\": " << s.moderate_poll_attempts
      << ", \"moderate_steal_interval\": " << s.moderate_steal_interval
      << ", \"moderate_sleep_ns\": " << s.moderate_sleep_ns
      << ", \"relaxed_steal_interval\": " << s.relaxed_steal_interval
      << ", \"relaxed_sleep_ns\": " << s.relaxed_sleep_ns << "},\n";
    o << "     \"latency\": [\n";
    for (size_t i = 0; i < c.latency.size(); ++i) {
      auto& r = c.latency[i];
      o << "       {\"size\": " << r.size;
      for (auto& p : r.paths) {
        // JSON keys: caf, bus (= placement pool), call, caf_loop, bus_loop
        std::string key = p.name;
        std::replace(key.begin(), key.end(), '-', '_');
        o << ", " << json_str(key) << ": " << json_hop(p.hop);
        o << ", " << json_str(key + "_cpu_changes") << ": " << p.cpu_changes;
        if (p.split)
          o << ", " << json_str(key + "_oneway") << ": {\"ping_ns\": " << json_hop(p.fwd)
            << ", \"pong_ns\": " << json_hop(p.back) << "}";
      }
      auto ratio = [&](const char* key, const char* a, const char* b) {
        if (r.get(a) && r.get(b))
          o << ", \"" << key << "\": " << fmt::format("{:.4f}", r.ratio(a, b));
      };
      ratio("ratio_median_bus_over_caf", "bus", "caf");
      ratio("ratio_median_bus_loop_over_call", "bus-loop", "call");
      ratio("ratio_median_bus_loop_over_caf_loop", "bus-loop", "caf-loop");
      ratio("ratio_median_bus_loop_over_caf", "bus-loop", "caf");
      o << ", \"errors\": " << r.errors << "}" << (i + 1 < c.latency.size() ? ",\n" : "\n");
    }
    o << "     ],\n     \"fanout\": [\n";
    for (size_t i = 0; i < c.fanout.size(); ++i) {
      auto& f = c.fanout[i];
      o << "       {\"subscribers\": " << f.subs << ", \"variants\": {";
      for (size_t k = 0; k < f.variants.size(); ++k) {
        auto& v = f.variants[k];
        o << (k ? ", " : "") << json_str(name_of(v.v)) << ": {\"published\": " << v.published
          << ", \"deliveries\": " << v.deliveries << ", \"seconds\": "
          << fmt::format("{:.4f}", static_cast<double>(v.total_ns) / 1e9)
          << ", \"publishes_per_s_median_round\": " << fmt::format("{:.0f}", v.publishes_per_s())
          << ", \"deliveries_per_s_median_round\": " << fmt::format("{:.0f}", v.deliveries_per_s())
          << ", \"deliveries_per_s_aggregate\": "
          << fmt::format("{:.0f}", v.aggregate_deliveries_per_s())
          << ", \"round_deliveries_per_s\": [";
        for (size_t q = 0; q < v.round_rates.size(); ++q)
          o << (q ? ", " : "") << fmt::format("{:.0f}", v.round_rates[q]);
        o << "], \"allocs_per_publish\": " << fmt::format("{:.3f}", v.allocs_per_publish())
          << ", \"drained_share\": " << fmt::format("{:.4f}", v.drained_share())
          << ", \"payload_shared\": " << (v.same_object && v.same_data ? "true" : "false")
          << ", \"counts_ok\": " << (v.counts_ok ? "true" : "false")
          << ", \"errors\": " << v.errors << "}";
      }
      o << "}}" << (i + 1 < c.fanout.size() ? ",\n" : "\n");
    }
    o << "     ]}" << (ci + 1 < all.size() ? ",\n" : "\n");
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

} // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"Mycelium in-process latency (bus on the worker pool vs raw CAF send; bus "
               "between loop services vs a function call and CAF's send on the I/O loop) "
               "and fan-out throughput"};
  app.add_option("--sizes", opt.sizes, "payload sizes in bytes (latency)")->delimiter(',');
  app.add_option("--rounds", opt.rounds, "alternating timed rounds per size and variant");
  app.add_option("--round-trips", opt.round_trips, "round trips per round");
  app.add_option("--warmup", opt.warmup, "untimed warm-up round trips per size and variant");
  app.add_option("--threads", opt.threads, "scheduler.max-threads");
  app.add_option("--configs", opt.configs, "actor system configs to run: default, tuned")
    ->delimiter(',');
  app.add_option("--paths", opt.paths,
                 "latency paths (default: all): caf (raw CAF send, worker pool), bus (two "
                 "services, placement pool), call (the same hop as a std::function call on "
                 "the I/O loop thread: the floor), caf-loop (raw CAF send between two "
                 "broker-like actors on the I/O loop), bus-loop (two services, placement "
                 "loop)")
    ->delimiter(',')
    ->check(CLI::IsMember({"caf", "bus", "call", "caf-loop", "bus-loop"}));
  app.add_option("--ws-aggressive-polls", opt.ws_aggressive_polls,
                 "tuned: work-stealing.aggressive-poll-attempts");
  app.add_option("--ws-moderate-sleep-ns", opt.ws_moderate_sleep_ns,
                 "tuned: work-stealing.moderate-sleep-duration in ns (0 = spin)");
  app.add_option("--ws-relaxed-sleep-us", opt.ws_relaxed_sleep_us,
                 "tuned: work-stealing.relaxed-sleep-duration in us");
  app.add_option("--fanout-subs", opt.fan_subs, "subscriber counts")->delimiter(',');
  app.add_option("--fanout-msgs", opt.fan_msgs, "messages published per fan-out round");
  app.add_option("--fanout-rounds", opt.fan_rounds, "timed fan-out rounds per variant");
  app.add_option("--fanout-batch", opt.fan_batch, "subscribers ack every N messages");
  app.add_option("--fanout-window", opt.fan_window, "batches in flight");
  app.add_option("--fanout-payload", opt.fan_payload, "fan-out payload bytes");
  app.add_option("--timer", opt.timer,
                 "round-trip timer: tsc (rdtsc calibrated against steady_clock; falls back "
                 "to steady without an invariant TSC) or steady");
  app.add_flag("--skip-latency", opt.skip_latency, "skip the latency part");
  app.add_flag("--skip-fanout", opt.skip_fanout, "skip the fan-out part");
  app.add_option("--json", opt.json, "JSON output file");
  CLI11_PARSE(app, argc, argv);
  if (opt.rounds == 0 || opt.round_trips == 0 || opt.fan_msgs == 0 || opt.fan_batch == 0
      || opt.fan_window == 0 || opt.fan_payload == 0 || opt.threads == 0) {
    fmt::print(stderr, "counts must be positive\n");
    return 2;
  }
  for (auto s : opt.sizes)
    if (s > 65536) {
      fmt::print(stderr, "payload size {} exceeds the schema maximum 65536\n", s);
      return 2;
    }
  for (auto& c : opt.configs)
    if (c != "default" && c != "tuned") {
      fmt::print(stderr, "unknown config '{}' (expected default or tuned)\n", c);
      return 2;
    }
  if (opt.timer != "tsc" && opt.timer != "steady") {
    fmt::print(stderr, "unknown timer '{}' (expected tsc or steady)\n", opt.timer);
    return 2;
  }
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
  auto clock_ns = clock_overhead_ns();
  auto step_ns = timer_step_ns();
  fmt::print("mycelium-bench-inprocess  {}  cpu: {}  hw threads: {}  loadavg: {}\n", started,
             read_first_line_with("/proc/cpuinfo", "model name"),
             std::thread::hardware_concurrency(), load0);
  fmt::print("timer: {} ({:.1f} ns per read, step {:.1f} ns); latencies are ONE-WAY HOPS "
             "derived from round trips (RTT/2)\n",
             timer_text, clock_ns, step_ns);
  timer_text += fmt::format(", read {:.1f} ns, step {:.1f} ns", clock_ns, step_ns);
#ifndef NDEBUG
  fmt::print("WARNING: built without NDEBUG (not a Release build)\n");
#endif
  std::vector<config_result> results;
  for (auto& cname : opt.configs) {
    auto c0 = now_ns();
    caf::actor_system_config cfg;
    configure(cfg, opt, cname == "tuned");
    config_result cr;
    cr.name = cname;
    {
      caf::actor_system sys{cfg};
      cr.sched = read_sched(sys);
      fmt::print("\n");
      print_sched(cname, cr.sched);
      std::fflush(stdout);
      if (!opt.skip_latency)
        cr.latency = run_latency(sys, opt);
      if (!opt.skip_fanout)
        for (auto s : opt.fan_subs)
          cr.fanout.push_back(run_fanout(sys, opt, static_cast<uint32_t>(s)));
    }
    cr.seconds = static_cast<double>(now_ns() - c0) / 1e9;
    results.push_back(std::move(cr));
  }
  for (auto& c : results)
    print_tables(opt, c);
  // goals from DESIGN.md
  fmt::print("\nGOALS (DESIGN.md): in-process hop between two loop services <= 200 ns "
             "median; on the pool <= 1.05 x a raw CAF send in the same run; in-process "
             "throughput >= 5 M msg/s (64 B)\n");
  for (auto& c : results) {
    for (auto& r : c.latency) {
      if (auto* b = r.get("bus-loop"))
        fmt::print("  [{}] {:>6}: bus-loop median hop {:.0f} ns ({}); bus-loop/call {:.3f}, "
                   "bus-loop/caf-loop {:.3f}\n",
                   c.name, human_size(r.size), b->hop.median,
                   b->hop.median <= 200 ? "met" : "NOT met", r.ratio("bus-loop", "call"),
                   r.ratio("bus-loop", "caf-loop"));
      if (r.get("bus") && r.get("caf"))
        fmt::print("  [{}] {:>6}: bus (pool) median hop {:.0f} ns, bus/caf = {:.3f} ({})\n",
                   c.name, human_size(r.size), r.get("bus")->hop.median, r.ratio(),
                   r.ratio() <= 1.05 ? "met" : "NOT met");
    }
    for (auto& f : c.fanout) {
      auto& b = f.get(fan_variant::bus);
      fmt::print("  [{}] fan-out to {:>2}: bus {} deliveries/s ({}), {} publishes/s, "
                 "{:.2f} allocations per publish\n",
                 c.name, f.subs, rate(b.deliveries_per_s()),
                 b.deliveries_per_s() >= 5e6 ? "met" : "NOT met", rate(b.publishes_per_s()),
                 b.allocs_per_publish());
    }
  }
  auto total_s = static_cast<double>(now_ns() - t_start) / 1e9;
  write_json(opt, results, clock_ns, timer_text, started, load0, total_s);
  fmt::print("total run time {:.1f} s\n", total_s);
  return 0;
}
