// mycelium-bench-hop-breakdown: a diagnostic, not a headline benchmark.
//
// Where does an in-process bus hop spend the time that a raw CAF `send` does
// not? Runs the same ping-pong as mycelium-bench-inprocess (16 B .. 64 KiB
// payloads, alternating rounds, one-way hop = RTT/2) for:
//
//   raw      two event_based_actors, `send(peer, ping{...})`
//   bus      two mycelium services, `publish` (service.hpp -> bus::deliver),
//            as the tree has it now
//   step 1   a re-implementation, on the public bus API (routing_table,
//            subscription), of deliver as it was before commit 3ab4862: one
//            shared caf::message wrapped in a mailbox element per subscriber,
//            the sender passed as a temporary strong_actor_ptr
//   step 2   1 + no temporary strong_actor_ptr for the sender and the
//            caf::message moved (not copied) into the last mailbox element
//   step 3   2 + a typed mailbox element (`make_mailbox_element(sender, id,
//            {}, T&&)`, one allocation) when the route has one subscriber
//            (steps 2 + 3 are what bus::deliver does since commit 3ab4862)
//   step 4   3 + the topic/subscription counters bumped with relaxed
//            load+store instead of lock-prefixed fetch_add (only valid with
//            single-writer counters; here it measures their cost)
//   step 5   4 + the route pointer cached per type (no unordered_map lookup)
//   raw+3    the raw pair with three extra (empty) base classes: CAF's worker
//            does dynamic_cast<abstract_actor*>(resumable*) per resume, whose
//            cost grows with the depth of the actor class hierarchy
//   raw+or   the raw pair with a behavior built like service::build_behavior
//            (`started_atom` case first, handlers chained with or_else)
//
// The subscriber side of steps 1-5 is the unchanged service::subscribe.
// See docs/benchmarks.md ("Where the bus hop's extra time goes").

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_clock.hpp"
#include "bench_messages.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"

namespace {

namespace mb = mbench;
using start_atom = caf::atom_constant<caf::atom("bstart")>;
using peer_atom = caf::atom_constant<caf::atom("bpeer")>;
using mstarted_atom = caf::atom_constant<caf::atom("mstarted")>;

using mycelium::bench::now_ns;

struct job {
  uint64_t n = 0;
  std::vector<uint8_t> payload;
  std::vector<uint32_t> rtt;
  std::promise<void> done;
};

struct logic {
  job* j;
  uint64_t i = 0;
  int64_t t0 = 0;
  template <class S>
  void start(S s) {
    i = 0;
    t0 = now_ns();
    s(mb::ping{i, j->payload});
  }
  template <class S>
  void on_pong(const mb::pong&, S s) {
    auto t1 = now_ns();
    j->rtt.push_back(static_cast<uint32_t>(t1 - t0));
    if (++i < j->n) {
      t0 = now_ns();
      s(mb::ping{i, j->payload});
    } else {
      j->done.set_value();
    }
  }
};

// -- raw pairs, optionally with a deeper class hierarchy or an or_else behavior --

template <int Depth>
struct deep : deep<Depth - 1> {
  using deep<Depth - 1>::deep;
};
template <>
struct deep<0> : caf::event_based_actor {
  using caf::event_based_actor::event_based_actor;
};

template <class Base>
class raw_pinger : public Base {
public:
  raw_pinger(caf::actor_config& c, job* j, bool orelse)
    : Base(c), l_{j}, orelse_(orelse) {
  }
  caf::behavior make_behavior() override {
    auto snd = [this](mb::ping&& x) { this->send(peer_, std::move(x)); };
    if (!orelse_)
      return {[this, snd](const mb::pong& x) { l_.on_pong(x, snd); },
              [this, snd](start_atom) { l_.start(snd); },
              [this](peer_atom, caf::actor& p) { peer_ = p; }};
    caf::message_handler all{[](mstarted_atom) { return caf::atom("ok"); }};
    all = all.or_else(caf::message_handler{[this, snd](const mb::pong& x) { l_.on_pong(x, snd); }});
    all = all.or_else(caf::message_handler{[this, snd](start_atom) { l_.start(snd); }});
    all = all.or_else(caf::message_handler{[this](peer_atom, caf::actor& p) { peer_ = p; }});
    return caf::behavior{all};
  }
  void on_exit() override {
    peer_ = nullptr;
  }

private:
  logic l_;
  caf::actor peer_;
  bool orelse_;
};

template <class Base>
class raw_ponger : public Base {
public:
  raw_ponger(caf::actor_config& c, caf::actor p, bool orelse)
    : Base(c), p_(std::move(p)), orelse_(orelse) {
  }
  caf::behavior make_behavior() override {
    auto f = [this](const mb::ping& x) { this->send(p_, mb::pong{x.seq, x.payload}); };
    if (!orelse_)
      return {f};
    caf::message_handler all{[](mstarted_atom) { return caf::atom("ok"); }};
    all = all.or_else(caf::message_handler{f});
    return caf::behavior{all};
  }
  void on_exit() override {
    p_ = nullptr;
  }

private:
  caf::actor p_;
  bool orelse_;
};

// -- bus pairs: service::publish (mode 0) or re-implemented variants (1..5) -------

class xservice : public mycelium::service {
public:
  xservice(caf::actor_config& c, mycelium::service_context ctx, int mode)
    : service(c, std::move(ctx)), mode_(mode) {
  }

  template <class T>
  void pub(T x) {
    if (mode_ == 0) {
      publish(std::move(x));
      return;
    }
    auto v = bus().version();
    if (v != ver_) {
      routes_ = bus().snapshot();
      ver_ = v;
      cached_ = nullptr;
    }
    const mycelium::routing_table::route* r = cached_;
    if (mode_ < 5 || r == nullptr) {
      auto i = routes_->routes.find(T::type_id);
      if (i == routes_->routes.end())
        return;
      r = &i->second;
      cached_ = r;
    }
    if (mode_ == 1) { // bus::deliver before commit 3ab4862
      auto msg = caf::make_message(std::move(x));
      const caf::strong_actor_ptr& sender = ctrl(); // temporary, as in publish()
      r->topic->published.fetch_add(1, std::memory_order_relaxed);
      for (auto* s : r->subscribers) {
        s->enqueued.fetch_add(1, std::memory_order_relaxed);
        s->subscriber->enqueue(
          caf::make_mailbox_element(sender, caf::make_message_id(), {}, msg), context());
      }
      return;
    }
    auto bump = [this](std::atomic<uint64_t>& a) {
      if (mode_ >= 4)
        a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      else
        a.fetch_add(1, std::memory_order_relaxed);
    };
    bump(r->topic->published);
    auto& subs = r->subscribers;
    if (mode_ >= 3 && subs.size() == 1) {
      bump(subs[0]->enqueued);
      subs[0]->subscriber->enqueue(caf::make_mailbox_element(caf::strong_actor_ptr{ctrl()},
                                                             caf::make_message_id(), {},
                                                             std::move(x)),
                                   context());
      return;
    }
    auto msg = caf::make_message(std::move(x));
    for (size_t k = 0; k < subs.size(); ++k) {
      bump(subs[k]->enqueued);
      auto elem = k + 1 == subs.size()
                    ? caf::make_mailbox_element(caf::strong_actor_ptr{ctrl()},
                                                caf::make_message_id(), {}, std::move(msg))
                    : caf::make_mailbox_element(caf::strong_actor_ptr{ctrl()},
                                                caf::make_message_id(), {}, msg);
      subs[k]->subscriber->enqueue(std::move(elem), context());
    }
  }

  void on_exit() override {
    routes_.reset();
    cached_ = nullptr;
    service::on_exit();
  }

private:
  int mode_;
  uint64_t ver_ = 0;
  mycelium::routing_table_ptr routes_;
  const mycelium::routing_table::route* cached_ = nullptr;
};

class xpinger : public xservice {
public:
  xpinger(caf::actor_config& c, mycelium::service_context ctx, int mode, job* j)
    : xservice(c, std::move(ctx), mode), l_{j} {
  }
  void on_start() override {
    subscribe<mb::pong>([this](const mb::pong& x) {
      l_.on_pong(x, [this](mb::ping&& y) { pub(std::move(y)); });
    });
    subscribe<mb::lat_start>([this](const mb::lat_start&) {
      l_.start([this](mb::ping&& y) { pub(std::move(y)); });
    });
  }

private:
  logic l_;
};

class xponger : public xservice {
public:
  using xservice::xservice;
  void on_start() override {
    subscribe<mb::ping>([this](const mb::ping& x) { pub(mb::pong{x.seq, x.payload}); });
  }
};

/// Cost of CAF's per-resume logging bookkeeping, which Debian's libcaf_core
/// keeps because it is built with CAF_LOG_LEVEL defined: worker::run does
/// CAF_PUSH_AID_FROM_PTR(dynamic_cast<abstract_actor*>(job)), i.e. one
/// cross-cast and two logger::thread_local_aid calls per resume. Timed alone
/// in a hot loop.
double cross_cast_ns(const caf::actor& a) {
  auto* base = caf::actor_cast<caf::abstract_actor*>(a);
  auto* job = dynamic_cast<caf::resumable*>(base);
  constexpr int n = 1000000;
  void* sink = nullptr;
  auto t0 = now_ns();
  for (int i = 0; i < n; ++i) {
    caf::resumable* p = job;
    asm volatile("" : "+r"(p)); // defeat hoisting
    sink = dynamic_cast<caf::abstract_actor*>(p);
    asm volatile("" ::"r"(sink));
  }
  return static_cast<double>(now_ns() - t0) / n;
}

double thread_local_aid_ns(caf::actor_system& sys) {
  constexpr int n = 1000000;
  caf::actor_id sink = 0;
  auto t0 = now_ns();
  for (int i = 0; i < n; ++i)
    sink += sys.logger().thread_local_aid(static_cast<caf::actor_id>(i));
  auto dt = static_cast<double>(now_ns() - t0) / n;
  sys.logger().thread_local_aid(0);
  return sink == 42 ? dt + 0 : dt;
}

} // namespace

int main(int argc, char** argv) {
  size_t threads = 1, rounds = 10, per = 20000, warmup = 5000;
  std::vector<size_t> sizes{16, 4096};
  CLI::App app{"Breakdown of the bus hop's extra cost over a raw CAF send (diagnostic)"};
  app.add_option("--threads", threads, "scheduler.max-threads (1 keeps the pair on one worker)");
  app.add_option("--rounds", rounds, "alternating rounds");
  app.add_option("--round-trips", per, "round trips per round and variant");
  app.add_option("--warmup", warmup, "warm-up round trips per variant");
  app.add_option("--sizes", sizes, "payload sizes")->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  caf::actor_system_config cfg;
  mb::add_message_types(cfg);
  cfg.set("scheduler.max-threads", static_cast<int64_t>(threads));
  caf::actor_system sys{cfg};
  fmt::print("hop breakdown: scheduler.max-threads={} (default work-stealing settings), "
             "{} x {} round trips per variant; one-way hop = RTT/2, steady_clock\n",
             threads, rounds, per);

  caf::actor service_handle; // for the cross-cast timing below
  constexpr int nmodes = 6;
  const char* names[] = {"bus (service::publish)", "1 deliver before 3ab4862",
                         "2 +no temp sender, move msg", "3 +typed element if 1 sub",
                         "4 +no lock-prefixed RMW", "5 +cached route (no hash)"};
  for (auto size : sizes) {
    std::vector<uint8_t> payload(size, 7);
    job raw_job, deep_job, orelse_job;
    std::vector<job> bus_jobs(nmodes);
    for (auto* j : {&raw_job, &deep_job, &orelse_job})
      j->payload = payload;
    for (auto& j : bus_jobs)
      j.payload = payload;
    std::vector<caf::actor> raw_actors;
    auto make_raw = [&](auto tag, job* j, bool orelse) {
      using base = typename decltype(tag)::type;
      auto a = sys.spawn<raw_pinger<base>>(j, orelse);
      auto b = sys.spawn<raw_ponger<base>>(a, orelse);
      caf::anon_send(a, peer_atom::value, b);
      raw_actors.push_back(a);
      raw_actors.push_back(b);
      return a;
    };
    struct t0 { using type = deep<0>; };
    struct t3 { using type = deep<3>; };
    auto raw_a = make_raw(t0{}, &raw_job, false);
    auto deep_a = make_raw(t3{}, &deep_job, false);
    auto orelse_a = make_raw(t0{}, &orelse_job, true);
    std::vector<std::unique_ptr<mycelium::node>> nodes;
    for (int m = 0; m < nmodes; ++m) {
      nodes.emplace_back(std::make_unique<mycelium::node>(sys, fmt::format("n{}", m)));
      auto ponger = nodes[m]->start(
        [m](caf::actor_system& s, mycelium::service_context c) {
          return s.spawn<xponger>(std::move(c), m);
        },
        "ponger");
      if (ponger && !service_handle)
        service_handle = *ponger;
      nodes[m]->start(
        [m, j = &bus_jobs[m]](caf::actor_system& s, mycelium::service_context c) {
          return s.spawn<xpinger>(std::move(c), m, j);
        },
        "pinger");
    }
    // variant ids: 0..5 bus modes, 6 raw, 7 raw+3, 8 raw+or
    auto run = [&](int v, size_t n) {
      job& j = v < nmodes ? bus_jobs[v] : v == 6 ? raw_job : v == 7 ? deep_job : orelse_job;
      j.n = n;
      j.done = std::promise<void>{};
      auto f = j.done.get_future();
      if (v < nmodes)
        nodes[v]->publish(mb::lat_start{0});
      else
        caf::anon_send(v == 6 ? raw_a : v == 7 ? deep_a : orelse_a, start_atom::value);
      f.wait();
    };
    constexpr int nvar = nmodes + 3;
    for (int v = 0; v < nvar; ++v)
      run(v, warmup);
    raw_job.rtt.clear();
    deep_job.rtt.clear();
    orelse_job.rtt.clear();
    for (auto& j : bus_jobs)
      j.rtt.clear();
    for (size_t r = 0; r < rounds; ++r)
      for (int k = 0; k < nvar; ++k)
        run(static_cast<int>((k + r) % nvar), per);
    auto stat = [](std::vector<uint32_t> v, double p) {
      std::sort(v.begin(), v.end());
      return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] / 2.0;
    };
    double base = stat(raw_job.rtt, 0.5);
    fmt::print("\npayload {} B              hop median   p99   vs raw\n", size);
    auto row = [&](const char* name, const job& j) {
      fmt::print("  {:30} {:7.1f} {:7.1f}   {:.3f}\n", name, stat(j.rtt, 0.5), stat(j.rtt, 0.99),
                 stat(j.rtt, 0.5) / base);
    };
    row("raw CAF send", raw_job);
    for (int m = 0; m < nmodes; ++m)
      row(names[m], bus_jobs[m]);
    row("raw, +3 base classes", deep_job);
    row("raw, or_else behavior", orelse_job);
    if (size == sizes.front()) {
      fmt::print("\nCAF per-resume bookkeeping (Debian libcaf_core is built with "
                 "CAF_LOG_LEVEL defined), timed alone:\n");
      fmt::print("  dynamic_cast<abstract_actor*>(resumable*): raw actor {:.1f} ns, "
                 "raw actor +3 bases {:.1f} ns, service subclass {:.1f} ns\n",
                 cross_cast_ns(raw_a), cross_cast_ns(deep_a),
                 service_handle ? cross_cast_ns(service_handle) : 0.0);
      fmt::print("  logger::thread_local_aid(aid): {:.1f} ns per call, 2 calls per resume\n",
                 thread_local_aid_ns(sys));
    }
    for (auto& n : nodes)
      n->stop();
    for (auto& a : raw_actors)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
  return 0;
}
