// Lending the I/O loop (io_loop::lend, docs/architecture.md "Lending the
// loop"): a thread that waits for something the loop delivers runs the
// loop's turns itself, so it takes frames from a shared-memory ring on its
// own thread and the loop thread sleeps. Two actor systems in this process,
// linked over shm: "a" echoes pings as pongs, "b" lends its loop. Waits are
// on events with timeouts.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "child_process.hpp"
#include "link_test.hpp"
#include "mycelium/actors/loop_thread.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "mycelium/transports/system_config.hpp"
#include "service_test_support.hpp"

using namespace std::chrono_literals;
using namespace mycelium;
namespace mt = mycelium::transports;
namespace lt = mycelium::linktest;
using mycelium::test_support::temp_dir;

namespace {

struct lend_config : caf::actor_system_config {
  lend_config() {
    mycelium::apply_defaults(*this); // the I/O loop
    set("logger.console", caf::atom("none"));
  }
};

class echo : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<lt::ping>([this](const lt::ping& p) { publish(lt::pong{p.seq, p.payload}); });
  }
};

/// What b's loop service saw: how many pongs, the last seq, on which
/// threads, and what a lend from inside a handler answered.
struct seen_t {
  std::mutex mtx;
  std::condition_variable cv;
  uint64_t count = 0;
  uint64_t last = 0;
  bool in_order = true;
  std::thread::id last_thread;
  uint64_t on_lender = 0; ///< handlers run on the thread that lent the loop
  std::thread::id lender;
  bool nested_refused = true;
  std::atomic<uint64_t> count_now{0}; ///< for lend's `done`
} seen;

class counter : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<lt::pong>([this](const lt::pong& p) {
      auto* loop = mt::io_loop::of(home_system());
      // A handler runs the loop's turns already: it cannot lend again.
      auto nested = loop->lend([](void*) noexcept { return true; }, nullptr,
                               std::chrono::steady_clock::now() + 1s);
      std::lock_guard<std::mutex> guard{seen.mtx};
      seen.nested_refused &= nested == mt::io_loop::lend_result::refused;
      seen.in_order &= p.seq == seen.last + 1;
      seen.last = p.seq;
      seen.last_thread = std::this_thread::get_id();
      if (seen.last_thread == seen.lender)
        ++seen.on_lender;
      ++seen.count;
      seen.count_now.store(seen.count, std::memory_order_release);
      seen.cv.notify_all();
    });
  }
};

bool await_count(uint64_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{seen.mtx};
  return seen.cv.wait_for(guard, timeout, [n] { return seen.count >= n; });
}

struct target {
  uint64_t n;
};

bool reached(void* ctx) noexcept {
  return seen.count_now.load(std::memory_order_acquire) >= static_cast<target*>(ctx)->n;
}

} // namespace

TEST_CASE("a thread the loop is lent to takes the ring's frames and runs loop services") {
  temp_dir dir{"mycelium-lend-"};
  lend_config cfg_a, cfg_b;
  caf::actor_system sys_a{cfg_a}, sys_b{cfg_b};
  node a{sys_a, "a"}, b{sys_b, "b"};
  auto* loop = mt::io_loop::of(sys_b);
  REQUIRE(loop != nullptr);
  {
    std::lock_guard<std::mutex> guard{seen.mtx};
    seen.lender = std::this_thread::get_id();
  }
  // Not enabled yet: refused, nothing run.
  target none{0};
  CHECK(loop->lend(&reached, &none, std::chrono::steady_clock::now() + 1s)
        == mt::io_loop::lend_result::refused);
  loop->enable_lending();
  REQUIRE(a.start(test_support::factory_of<echo>(), "echo", {}, {}, placement::loop));
  REQUIRE(b.start(test_support::factory_of<counter>(), "counter", {}, {}, placement::loop));
  mt::link_config c;
  c.kind = mt::link_kind::shm;
  c.address = (dir.path / "shm.sock").string();
  c.wait = mt::wait_mode::busy_poll;
  c.role = mt::link_role::listen;
  c.name = "a-listen";
  auto la = mt::link::start(a, lt::descriptor(), c);
  REQUIRE(la);
  c.role = mt::link_role::connect;
  c.name = "b-connect";
  auto lb = mt::link::start(b, lt::descriptor(), c);
  REQUIRE(lb);
  REQUIRE(lb->await_up(10s));
  REQUIRE(lb->await_peer_interest(lt::ping::type_id, 10s));
  REQUIRE(la->await_peer_interest(lt::pong::type_id, 10s));

  SUBCASE("ping-pong with the loop lent: every pong, in order, on the lender's thread") {
    constexpr uint64_t rounds = 300;
    uint64_t done = 0;
    for (uint64_t i = 1; i <= rounds; ++i) {
      REQUIRE(b.publish(lt::ping{i, {1, 2, 3}}) == publish_status::ok);
      target t{i};
      auto r = loop->lend(&reached, &t, std::chrono::steady_clock::now() + 10s);
      if (r == mt::io_loop::lend_result::done)
        ++done;
      else
        REQUIRE(await_count(i, 10s)); // delivered by the loop thread after all
    }
    CHECK(done == rounds); // no lend timed out
    std::lock_guard<std::mutex> guard{seen.mtx};
    CHECK(seen.count == rounds);
    CHECK(seen.in_order);
    CHECK(seen.nested_refused);
    // The loop thread may take a frame while this thread is between two
    // lends (it attends after its grace period), but most run here.
    CHECK(seen.on_lender > 0);
    MESSAGE("handlers on the lending thread: " << seen.on_lender << " of " << rounds);
    CHECK(lb->stats().bad_frames == 0);
  }

  SUBCASE("after a lender leaves, the loop thread delivers without it") {
    target first{1};
    REQUIRE(b.publish(lt::ping{1, {}}) == publish_status::ok);
    CHECK(loop->lend(&reached, &first, std::chrono::steady_clock::now() + 10s)
          == mt::io_loop::lend_result::done);
    // The lender left the rings disarmed (it was expected back): nobody
    // lends now, and the loop thread must attend on its own.
    for (uint64_t i = 2; i <= 50; ++i)
      REQUIRE(b.publish(lt::ping{i, {}}) == publish_status::ok);
    REQUIRE(await_count(50, 10s));
    std::lock_guard<std::mutex> guard{seen.mtx};
    CHECK(seen.in_order);
    CHECK(seen.last_thread != std::this_thread::get_id());
  }

  SUBCASE("a lend that sees nothing times out and runs the loop meanwhile") {
    target never{1000000};
    auto t0 = std::chrono::steady_clock::now();
    CHECK(loop->lend(&reached, &never, t0 + 20ms) == mt::io_loop::lend_result::timeout);
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
    // The link kept working: a ping sent now still comes back.
    REQUIRE(b.publish(lt::ping{1, {}}) == publish_status::ok);
    CHECK(await_count(1, 10s));
  }

  lb->stop();
  la->stop();
  std::lock_guard<std::mutex> guard{seen.mtx};
  seen.count = 0;
  seen.last = 0;
  seen.on_lender = 0;
  seen.in_order = true;
  seen.count_now = 0;
}
