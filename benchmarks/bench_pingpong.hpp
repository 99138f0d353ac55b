#pragma once

// The actors of the two-process link benchmarks (mycelium-bench-links,
// mycelium-bench-shm), on the mbench schema (bench_messages.toml):
//   - far_service / driver_service: the bus ends (B answers ping with pong
//     and counts tick streams; A times round trips and publishes streams),
//   - caf_far / caf_pinger / caf_streamer: the same over plain CAF remote
//     actors (BASP), and the `caf` round-trip path built on them.
// The jobs (`lat_job`, `tput_job`) are written by the driver before a start
// message and read after `done` fires, so the actor and the driver never
// touch them at the same time.

#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/format.h>

#include "bench_clock.hpp"
#include "bench_messages.hpp"
#include "bench_two_process.hpp"
#include "mycelium/actors/service.hpp"

namespace mycelium::bench {

/// Starts a run of caf_streamer (and of other plain-actor drivers).
using start_atom = caf::atom_constant<caf::atom("bstart")>;

/// B's service: answers ping with pong; counts tick streams announced by
/// link_tput_begin and acks once complete.
class far_service : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    subscribe<mbench::ping>([this](const mbench::ping& x) { publish(mbench::pong{x.seq, x.payload}); });
    subscribe<mbench::tick>([this](const mbench::tick& t) {
      touch_ += t.payload.empty() ? 0 : t.payload[0];
      // mbench::ack is reused for the reply: count = ticks received,
      // obj_addr = the round, data_addr = a checksum that keeps the reads.
      if (++count_ == expected_)
        publish(mbench::ack{0, count_, round_, touch_, 0});
    });
    subscribe<mbench::link_tput_begin>([this](const mbench::link_tput_begin& b) {
      round_ = b.round;
      expected_ = b.count;
      count_ = 0;
    });
  }

private:
  uint64_t round_ = 0;
  uint64_t expected_ = 0;
  uint64_t count_ = 0;
  uint64_t touch_ = 0;
};

/// B's plain CAF actor, reached over BASP: answers ping with pong, counts
/// tick streams like far_service.
struct caf_far_state {
  uint64_t round = 0, expected = 0, count = 0;
};

inline caf::behavior caf_far(caf::stateful_actor<caf_far_state>* self) {
  return {
    [self](const mbench::ping& x) {
      self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                 mbench::pong{x.seq, x.payload});
    },
    [self](const mbench::tick&) {
      auto& st = self->state;
      if (++st.count == st.expected)
        self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                   mbench::ack{0, st.count, st.round, 0, 0});
    },
    [self](const mbench::link_tput_begin& b) {
      self->state = caf_far_state{b.round, b.count, 0};
    },
  };
}

/// One ping-pong run of an actor-based path: written by the driver before
/// the start message, filled by the pinger, read after `done`.
struct lat_job {
  uint64_t n = 0;
  std::vector<uint8_t> payload;
  std::vector<uint32_t>* samples = nullptr;
  int64_t elapsed_ns = 0;
  uint64_t errors = 0;
  std::promise<void> done;
};

/// Pinger logic shared by the bus and the CAF pinger.
struct pinger_logic {
  lat_job* job;
  uint64_t i = 0;
  int64_t t0 = 0;
  int64_t begin = 0;

  template <class Send>
  void start(Send send) {
    i = 0;
    begin = now_ns();
    t0 = ticks();
    send(mbench::ping{i, job->payload});
  }

  template <class Send>
  void on_pong(const mbench::pong& x, Send send) {
    auto t1 = ticks();
    if (x.seq != i || x.payload.size() != job->payload.size())
      ++job->errors;
    if (job->samples)
      job->samples->push_back(ticks_to_ns(t1 - t0));
    if (++i < job->n) {
      t0 = ticks();
      send(mbench::ping{i, job->payload});
    } else {
      job->elapsed_ns = now_ns() - begin;
      job->done.set_value();
    }
  }
};

/// One throughput round of an actor-based path: written by the driver
/// before the start message, filled by the publisher, read after `done`.
struct tput_job {
  uint64_t n = 0;
  std::vector<uint8_t> payload;
  int64_t elapsed_ns = 0;
  uint64_t not_ok = 0; // publishes that did not return ok
  uint64_t acked = 0;
  std::promise<void> done;
};

/// A's bus-side driver service: the latency pinger and the throughput
/// publisher of one link.
class driver_service : public mycelium::service {
public:
  driver_service(caf::actor_config& cfg, mycelium::service_context ctx, lat_job* lj,
                 tput_job* tj)
    : service(cfg, std::move(ctx)), logic_{lj}, tj_(tj) {
  }

  void on_start() override {
    // Hot handler first: handlers are matched in subscription order.
    subscribe<mbench::pong>([this](const mbench::pong& x) {
      logic_.on_pong(x, [this](mbench::ping&& y) { emit(std::move(y)); });
    });
    subscribe<mbench::lat_start>([this](const mbench::lat_start&) {
      logic_.start([this](mbench::ping&& y) { emit(std::move(y)); });
    });
    subscribe<mbench::fan_start>([this](const mbench::fan_start& s) { blast(s.round); });
    subscribe<mbench::ack>([this](const mbench::ack& a) {
      if (a.obj_addr != round_) // obj_addr carries the round (see far_service)
        return;                 // late ack of an aborted round
      tj_->elapsed_ns = now_ns() - t0_;
      tj_->acked = a.count;
      tj_->done.set_value();
    });
  }

private:
  void emit(mbench::ping&& x) {
    if (publish(std::move(x)) != mycelium::publish_status::ok)
      ++logic_.job->errors;
  }

  /// Publishes the whole stream in one handler: `publish` blocks (policy
  /// block) whenever the link's send queue is full.
  void blast(uint64_t round) {
    round_ = round;
    t0_ = now_ns();
    tj_->not_ok = 0;
    if (publish(mbench::link_tput_begin{round, tj_->n}) != mycelium::publish_status::ok)
      ++tj_->not_ok;
    for (uint64_t i = 0; i < tj_->n; ++i)
      if (publish(mbench::tick{i, tj_->payload}) != mycelium::publish_status::ok)
        ++tj_->not_ok;
  }

  pinger_logic logic_;
  tput_job* tj_;
  uint64_t round_ = 0;
  int64_t t0_ = 0;
};

/// Waits for an actor-driven run; a stall is an error (never hangs).
inline void await_done(std::future<void>& f, const std::string& what, std::chrono::seconds limit) {
  if (f.wait_for(limit) != std::future_status::ready)
    throw bench_error(what + ": no answer within " + std::to_string(limit.count()) + " s");
}

/// A's plain CAF pinger (the `caf` path): pinger_logic over BASP.
class caf_pinger : public caf::event_based_actor {
public:
  caf_pinger(caf::actor_config& cfg, lat_job* job, caf::actor peer)
    : event_based_actor(cfg), logic_{job}, peer_(std::move(peer)) {
  }

  caf::behavior make_behavior() override {
    auto snd = [this](mbench::ping&& x) { send(peer_, std::move(x)); };
    return {
      [this, snd](const mbench::pong& x) { logic_.on_pong(x, snd); },
      [this, snd](start_atom) { logic_.start(snd); },
    };
  }

  void on_exit() override {
    peer_ = nullptr;
  }

private:
  pinger_logic logic_;
  caf::actor peer_;
};

/// The `caf` round-trip path: a caf_pinger towards B's caf_far.
class caf_rtt final : public rtt_path {
public:
  caf_rtt(std::string name, caf::actor_system& sys, const caf::actor& remote)
    : rtt_path(std::move(name)) {
    pinger_ = sys.spawn<caf_pinger>(&job_, remote);
  }
  ~caf_rtt() override {
    caf::anon_send_exit(pinger_, caf::exit_reason::user_shutdown);
  }

  void set_payload(const std::vector<uint8_t>& payload) override {
    job_.payload = payload;
  }

  int64_t run(size_t n, std::vector<uint32_t>* out) override {
    job_.n = n;
    job_.samples = out;
    job_.errors = 0;
    job_.done = std::promise<void>{};
    auto f = job_.done.get_future();
    caf::anon_send(pinger_, start_atom::value);
    await_done(f, name(), std::chrono::seconds(600));
    if (job_.errors)
      throw bench_error(fmt::format("{}: {} wrong answers", name(), job_.errors));
    return job_.elapsed_ns;
  }

private:
  lat_job job_;
  caf::actor pinger_;
};

/// A's CAF BASP stream sender: on start, sends link_tput_begin and n ticks
/// to the remote actor (BASP has no flow control: everything is enqueued at
/// once), then waits for its ack.
class caf_streamer : public caf::event_based_actor {
public:
  caf_streamer(caf::actor_config& cfg, tput_job* job, caf::actor peer)
    : event_based_actor(cfg), job_(job), peer_(std::move(peer)) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](start_atom, uint64_t round) {
        round_ = round;
        t0_ = now_ns();
        send(peer_, mbench::link_tput_begin{round, job_->n});
        for (uint64_t i = 0; i < job_->n; ++i)
          send(peer_, mbench::tick{i, job_->payload});
      },
      [this](const mbench::ack& a) {
        if (a.obj_addr != round_)
          return;
        job_->elapsed_ns = now_ns() - t0_;
        job_->acked = a.count;
        job_->done.set_value();
      },
    };
  }

  void on_exit() override {
    peer_ = nullptr;
  }

private:
  tput_job* job_;
  caf::actor peer_;
  uint64_t round_ = 0;
  int64_t t0_ = 0;
};

/// B's caf_far as a BASP proxy (loopback `port`).
inline caf::actor remote_far(caf::actor_system& sys, uint16_t port) {
  auto remote = sys.middleman().remote_actor("127.0.0.1", port);
  if (!remote)
    throw bench_error("remote_actor 127.0.0.1:" + std::to_string(port) + ": "
                      + sys.render(remote.error()));
  return *remote;
}

} // namespace mycelium::bench
