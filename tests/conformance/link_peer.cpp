// mycelium-link-peer: the far side of the link conformance suite, the
// network-namespace test and the socket benchmarks. One node with the
// conformance services and one link (listening or connecting); optionally
// exposed through CAF BASP for remote spawning. `--placement` puts the
// peer's services on CAF's worker pool or on the node's I/O loop.
//
// Prints "ready port=<tcp port> basp=<basp port>" on stdout once the link
// listens (or has started connecting), then runs until stdin reaches EOF
// (the driver died or closed it) or SIGTERM/SIGINT. Exit codes: 0 clean,
// 1 runtime error, 2 bad command line or the address is unusable.

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <cstdio>
#include <iostream>
#include <thread>

#include <poll.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "link_test.hpp"
#include "link_test_other.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/placement.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "mycelium/detail/cpu_relax.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/remote_node.hpp"
#include "mycelium/transports/system_config.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "peer_service.hpp"

namespace mt = mycelium::transports;
using namespace std::chrono_literals;

MYCELIUM_REGISTER_SERVICE("linktest.peer", mycelium::conformance::peer_service);
MYCELIUM_REGISTER_SERVICE("linktest.echo", mycelium::conformance::echo_service);

namespace {

namespace lt = mycelium::linktest;

/// Counts pongs for `--ping`.
struct pong_counter {
  std::mutex mtx;
  std::condition_variable cv;
  uint64_t good = 0;
  uint64_t bad = 0;
};

class pong_checker : public mycelium::service {
public:
  pong_checker(caf::actor_config& cfg, mycelium::service_context ctx,
               std::shared_ptr<pong_counter> c)
    : service(cfg, std::move(ctx)), c_(std::move(c)) {
  }

  void on_start() override {
    subscribe<lt::pong>([this](const lt::pong& p) {
      bool ok = p.payload == mycelium::conformance::make_payload(p.seq, 1000);
      std::lock_guard<std::mutex> guard{c_->mtx};
      ++(ok ? c_->good : c_->bad);
      c_->cv.notify_all();
    });
  }

private:
  std::shared_ptr<pong_counter> c_;
};

/// `--ping N`: sends N pings of 1000 bytes, waits for N matching pongs
/// (checked by a service placed at `where`).
int run_pings(mycelium::node& n, mt::link& lk, uint64_t count,
              mycelium::placement where) {
  auto counter = std::make_shared<pong_counter>();
  auto started = n.start(
    [counter](caf::actor_system& sys, mycelium::service_context ctx) {
      return sys.spawn<pong_checker>(std::move(ctx), counter);
    },
    "pong-checker", {}, {}, where);
  if (!started) {
    std::cerr << "mycelium-link-peer: " << mycelium::render(started.error()) << "\n";
    return 1;
  }
  if (!lk.await_up(30s) || !lk.await_peer_interest(lt::ping::type_id, 30s)) {
    std::cerr << "mycelium-link-peer: link " << lk.config().endpoint()
              << " did not come up within 30 s: " << lk.stats().last_error << "\n";
    return 1;
  }
  for (uint64_t i = 1; i <= count; ++i)
    n.publish(lt::ping{i, mycelium::conformance::make_payload(i, 1000)});
  std::unique_lock<std::mutex> guard{counter->mtx};
  if (!counter->cv.wait_for(guard, 60s, [&] {
        return counter->good + counter->bad >= count;
      })) {
    std::cerr << "mycelium-link-peer: only " << counter->good << " of " << count
              << " pongs arrived within 60 s\n";
    return 1;
  }
  if (counter->bad != 0) {
    std::cerr << "mycelium-link-peer: " << counter->bad << " pongs had a wrong payload\n";
    return 1;
  }
  std::cout << "echo ok " << counter->good << " from " << lk.stats().peer << std::endl;
  return 0;
}

/// Closed-loop round trips for `--rtt`: the pong handler records the time
/// since its ping and publishes the next one, like the OCaml client of
/// bindings/ocaml/bench does. Thread-safety: `mtx` guards `done`; main
/// writes `sent` once before the first publish, then only the service
/// touches `sent` and `samples`; main reads `samples` after `done`.
struct rtt_state {
  std::mutex mtx;
  std::condition_variable cv;
  bool done = false;
  uint64_t count = 0;
  size_t size = 0;
  std::chrono::microseconds gap{0}; ///< pause after each pong (busy, in the handler)
  std::vector<int64_t> samples;
  std::chrono::steady_clock::time_point sent;
};

class rtt_driver : public mycelium::service {
public:
  rtt_driver(caf::actor_config& cfg, mycelium::service_context ctx, std::shared_ptr<rtt_state> s)
    : service(cfg, std::move(ctx)), s_(std::move(s)), payload_(s_->size, 0x5a) {
  }

  void on_start() override {
    subscribe<lt::pong>([this](const lt::pong& p) {
      auto now = std::chrono::steady_clock::now();
      s_->samples.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - s_->sent).count());
      if (p.seq < s_->count) {
        // The pause lets the echo's side go idle (and sleep, past its spin).
        while (std::chrono::steady_clock::now() - now < s_->gap)
          mycelium::detail::cpu_relax();
        s_->sent = std::chrono::steady_clock::now();
        publish(lt::ping{p.seq + 1, payload_});
      } else {
        std::lock_guard<std::mutex> guard{s_->mtx};
        s_->done = true;
        s_->cv.notify_all();
      }
    });
  }

private:
  std::shared_ptr<rtt_state> s_;
  std::vector<uint8_t> payload_;
};

/// `--rtt N --rtt-size S`: N closed-loop ping/pong round trips with S-byte
/// payloads; prints "rtt ns" and every sample on one line, then exits.
int run_rtt(mycelium::node& n, mt::link& lk, uint64_t count, size_t size,
            std::chrono::microseconds gap, mycelium::placement where) {
  auto st = std::make_shared<rtt_state>();
  st->count = count;
  st->size = size;
  st->gap = gap;
  st->samples.reserve(count);
  auto started = n.start(
    [st](caf::actor_system& sys, mycelium::service_context ctx) {
      return sys.spawn<rtt_driver>(std::move(ctx), st);
    },
    "rtt-driver", {}, {}, where);
  if (!started) {
    std::cerr << "mycelium-link-peer: " << mycelium::render(started.error()) << "\n";
    return 1;
  }
  if (!lk.await_up(30s) || !lk.await_peer_interest(lt::ping::type_id, 30s)) {
    std::cerr << "mycelium-link-peer: link " << lk.config().endpoint()
              << " did not come up within 30 s: " << lk.stats().last_error << "\n";
    return 1;
  }
  // The first ping; the driver's pong handler sends the others. Storing
  // `sent` before the publish orders it before the handler's read.
  st->sent = std::chrono::steady_clock::now();
  n.publish(lt::ping{1, std::vector<uint8_t>(size, 0x5a)});
  std::unique_lock<std::mutex> guard{st->mtx};
  if (!st->cv.wait_for(guard, 600s, [&] { return st->done; })) {
    std::cerr << "mycelium-link-peer: round trips did not finish within 600 s\n";
    return 1;
  }
  std::cout << "rtt ns";
  for (auto x : st->samples)
    std::cout << " " << x;
  std::cout << std::endl;
  return 0;
}

volatile std::sig_atomic_t stop_requested = 0;

void on_signal(int) {
  stop_requested = 1;
}

/// Blocks until stdin is closed or a stop signal arrives.
void wait_for_stop() {
  char buf[256];
  while (stop_requested == 0) {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    int rc = ::poll(&p, 1, 100);
    if (rc > 0) {
      auto n = ::read(STDIN_FILENO, buf, sizeof(buf));
      if (n <= 0)
        return; // EOF: the driver is gone
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mycelium-link-peer: one Mycelium node with the link "
               "conformance services and one Unix, TCP or shared-memory link"};
  std::string kind = "tcp";
  std::string listen_addr;
  std::string connect_addr;
  uint16_t port = 0;
  std::string schema = "main";
  std::string secret;
  std::string node_name = "peer";
  std::string services = "peer";
  std::string placement_text = "pool";
  std::string overflow = "block";
  uint32_t max_payload = mycelium::wire::default_max_payload;
  size_t send_queue = 4096;
  int64_t block_ms = 100;
  int64_t heartbeat_ms = 100;
  int64_t peer_timeout_ms = 1000;
  int expose_port = -1;
  uint64_t ping_count = 0;
  uint64_t rtt_count = 0;
  size_t rtt_size = 16;
  uint64_t rtt_gap_us = 0;
  bool node_defaults = false;
  std::string wait = "spin_then_block";
  uint64_t ring_capacity = uint64_t{4} << 20;
  app.add_option("--kind", kind, "link kind: unix, tcp or shm")
    ->check(CLI::IsMember({"unix", "tcp", "shm"}));
  auto* l = app.add_option("--listen", listen_addr,
                           "listen on this socket path (unix, shm) or address (tcp)");
  auto* c = app.add_option("--connect", connect_addr,
                           "connect to this socket path (unix, shm) or host (tcp)");
  app.add_option("--wait", wait, "shm: busy_poll, spin_then_block or block");
  app.add_option("--ring-capacity", ring_capacity, "shm: bytes per ring (power of two)");
  l->excludes(c);
  app.add_option("--port", port, "TCP port (listen: 0 picks one)");
  app.add_option("--schema", schema, "main, or 'other' for a deliberately different schema")
    ->check(CLI::IsMember({"main", "other"}));
  app.add_option("--secret", secret, "shared secret for the link's authentication");
  app.add_option("--name", node_name, "node name announced in the hello");
  app.add_option("--services", services, "services to start: peer, echo or none")
    ->check(CLI::IsMember({"peer", "echo", "none"}));
  app.add_option("--placement", placement_text,
                 "where the services run: pool (CAF's worker pool, the default) "
                 "or loop (the node's I/O loop)");
  app.add_option("--max-payload", max_payload, "largest payload in bytes");
  app.add_option("--send-queue", send_queue, "messages in flight before the overflow policy applies");
  app.add_option("--overflow", overflow, "block, drop_newest or disconnect");
  app.add_option("--block-timeout-ms", block_ms, "publisher wait under policy block");
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval");
  app.add_option("--peer-timeout-ms", peer_timeout_ms, "peer counts as lost after this silence");
  app.add_option("--expose", expose_port, "also expose the node through CAF BASP on this port (0: pick)");
  app.add_option("--rtt", rtt_count,
                 "benchmark: this many closed-loop ping/pong round trips, print the "
                 "samples ('rtt ns ...') and exit (bindings/ocaml/bench)");
  app.add_option("--rtt-size", rtt_size, "payload bytes of the --rtt pings");
  app.add_option("--rtt-gap-us", rtt_gap_us,
                 "microseconds the --rtt driver waits (busy) after each pong before the "
                 "next ping, so that the echo's side goes idle between round trips");
  app.add_flag("--node-defaults", node_defaults,
               "run the actor system with a node's defaults (mycelium::system_config, "
               "docs/configuration.md) instead of CAF's; the benchmarks use it");
  app.add_option("--ping", ping_count,
                 "send this many pings, check the pongs, print 'echo ok N' and exit");
  CLI11_PARSE(app, argc, argv);
  if (listen_addr.empty() && connect_addr.empty()) {
    std::cerr << "mycelium-link-peer: give --listen ADDRESS or --connect ADDRESS\n";
    return 2;
  }

  mycelium::placement where = mycelium::placement::pool;
  if (auto err = mycelium::parse_placement(placement_text, where)) {
    std::cerr << "mycelium-link-peer: --placement: " << mycelium::render(err) << "\n";
    return 2;
  }
  mt::link_config cfg;
  cfg.name = "conformance";
  if (auto err = mt::parse_link_kind(kind, cfg.kind)) {
    std::cerr << "mycelium-link-peer: " << mycelium::render(err) << "\n";
    return 2;
  }
  if (auto err = mycelium::parse_overflow_policy(overflow, cfg.overflow)) {
    std::cerr << "mycelium-link-peer: " << mycelium::render(err) << "\n";
    return 2;
  }
  if (auto err = mt::parse_wait_mode(wait, cfg.wait)) {
    std::cerr << "mycelium-link-peer: " << mycelium::render(err) << "\n";
    return 2;
  }
  cfg.ring_capacity = ring_capacity;
  cfg.role = listen_addr.empty() ? mt::link_role::connect : mt::link_role::listen;
  cfg.address = listen_addr.empty() ? connect_addr : listen_addr;
  cfg.port = port;
  cfg.secret = secret;
  cfg.max_payload = max_payload;
  cfg.send_queue = send_queue;
  cfg.block_timeout = std::chrono::milliseconds(block_ms);
  cfg.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  cfg.peer_timeout = std::chrono::milliseconds(peer_timeout_ms);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  caf::actor_system_config sys_cfg;
  if (node_defaults)
    mycelium::apply_defaults(sys_cfg);
  mt::load_io_loop(sys_cfg); // CAF's middleman, able to run shm links
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{sys_cfg};
  mycelium::node n{sys, node_name};
  if (services != "none") {
    auto started = n.start("linktest." + services, {}, {}, {}, where);
    if (!started) {
      std::cerr << "mycelium-link-peer: " << mycelium::render(started.error()) << "\n";
      return 1;
    }
  }
  const auto& desc = schema == "main" ? mycelium::linktest::descriptor()
                                      : mycelium::linktest_other::descriptor();
  auto lk = mt::link::start(n, desc, cfg);
  if (!lk) {
    std::cerr << "mycelium-link-peer: " << mycelium::render(lk.error()) << "\n";
    return 2;
  }
  int basp = 0;
  if (expose_port >= 0) {
    auto p = mt::expose(n, static_cast<uint16_t>(expose_port));
    if (!p) {
      std::cerr << "mycelium-link-peer: " << mycelium::render(p.error()) << "\n";
      return 2;
    }
    basp = *p;
  }
  std::cout << "ready port=" << lk->port() << " basp=" << basp << std::endl;
  if (rtt_count > 0) {
    auto rc = run_rtt(n, *lk, rtt_count, rtt_size, std::chrono::microseconds{rtt_gap_us},
                      where);
    lk->stop();
    n.stop();
    return rc;
  }
  if (ping_count > 0) {
    auto rc = run_pings(n, *lk, ping_count, where);
    lk->stop();
    n.stop();
    return rc;
  }
  wait_for_stop();
  lk->stop();
  n.stop();
  return 0;
}
