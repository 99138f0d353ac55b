// The bounded send queue of a link: each overflow policy, exact counters,
// blocking with a timeout and wake-up on release. No sleeps: a blocked
// publisher is released by another thread, or times out.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "mycelium/actors/loop_thread.hpp"
#include "mycelium/transports/send_gate.hpp"

using namespace mycelium;
using mycelium::transports::send_gate;
using namespace std::chrono_literals;

TEST_CASE("send_gate: drop_newest admits up to capacity and counts the rest") {
  send_gate g{3, overflow_policy::drop_newest, 0ns};
  CHECK(g.admit());
  CHECK(g.admit());
  CHECK(g.admit());
  CHECK_FALSE(g.admit());
  CHECK_FALSE(g.admit());
  CHECK(g.dropped() == 2);
  CHECK(g.depth() == 3);
  g.release(2);
  CHECK(g.admit());
  CHECK(g.depth() == 2);
  CHECK(g.back_pressured() == 0);
}

TEST_CASE("send_gate: as a link's port it leaves admitted messages to the mailbox") {
  send_gate g{1, overflow_policy::drop_newest, 0ns};
  mycelium::port& p = g;
  CHECK(p.offer(1, nullptr) == offer_result::enqueue);
  CHECK(p.offer(1, nullptr) == offer_result::refused);
  CHECK(g.dropped() == 1);
  g.release();
  CHECK(p.offer(1, nullptr) == offer_result::enqueue);
}

TEST_CASE("send_gate: disconnect fires once per episode until re-armed") {
  int fired = 0;
  send_gate g{1, overflow_policy::disconnect, 0ns, [&] { ++fired; }};
  CHECK(g.admit());
  CHECK_FALSE(g.admit());
  CHECK_FALSE(g.admit());
  CHECK(fired == 1);
  CHECK(g.disconnects() == 1);
  CHECK(g.dropped() == 2);
  g.rearm();
  CHECK_FALSE(g.admit());
  CHECK(fired == 2);
}

TEST_CASE("send_gate: block waits up to the timeout, then back_pressured") {
  send_gate g{1, overflow_policy::block, 30ms};
  CHECK(g.admit());
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(g.admit());
  CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
  CHECK(g.back_pressured() == 1);
  CHECK(g.depth() == 1);
}

TEST_CASE("send_gate: a blocked publisher proceeds when a slot is released") {
  send_gate g{1, overflow_policy::block, 10s};
  CHECK(g.admit());
  std::promise<void> started;
  auto f = std::async(std::launch::async, [&] {
    started.set_value();
    return g.admit();
  });
  started.get_future().wait();
  g.release();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  CHECK(f.get());
  CHECK(g.back_pressured() == 0);
  CHECK(g.depth() == 1);
}

TEST_CASE("send_gate: inside no_block_scope a full block gate refuses at once") {
  send_gate g{1, overflow_policy::block, 10s};
  CHECK(g.admit());
  {
    send_gate::no_block_scope scope;
    CHECK_FALSE(g.admit());
  }
  CHECK(g.back_pressured() == 1);
}

TEST_CASE("send_gate: many publishers never exceed the capacity") {
  send_gate g{64, overflow_policy::drop_newest, 0ns};
  std::atomic<uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i)
        if (g.admit()) {
          admitted.fetch_add(1);
          g.release();
        }
    });
  for (auto& t : threads)
    t.join();
  CHECK(admitted.load() + g.dropped() == 40000);
  CHECK(g.depth() == 0);
}

TEST_CASE("overflow policies parse by name; unknown names list the valid ones") {
  overflow_policy p;
  CHECK(parse_overflow_policy("drop_newest", p) == caf::none);
  CHECK(p == overflow_policy::drop_newest);
  CHECK(parse_overflow_policy("disconnect", p) == caf::none);
  CHECK(p == overflow_policy::disconnect);
  CHECK(parse_overflow_policy("drop", p) != caf::none);
}

TEST_CASE("send_gate: the thread that drains the gate never waits for itself") {
  // A loop-placed service publishing into a socket link runs the I/O
  // loop's turns, the only ones that make room: waiting would deadlock. So
  // does a thread the loop is lent to (mycelium::current_loop()).
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto* loop = &sys.middleman().backend();
  send_gate g{1, overflow_policy::block, 10s};
  g.drained_by(loop);
  CHECK(g.admit());
  current_loop() = loop; // this thread runs the loop's turns now
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(g.admit()); // at once, not after 10 s
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  current_loop() = nullptr;
  CHECK(g.back_pressured() == 1);
  // Any other thread still waits and is released by a release().
  auto other = std::async(std::launch::async, [&] { return g.admit(); });
  CHECK(other.wait_for(50ms) == std::future_status::timeout); // it waits
  g.release();
  CHECK(other.get());
  CHECK(g.back_pressured() == 1);
}

TEST_CASE("overflow_guard: one policy decision and one set of counters") {
  int fired = 0;
  std::chrono::steady_clock::time_point deadline;
  overflow_guard drop{overflow_policy::drop_newest, 1s};
  CHECK(drop.on_full(true, deadline) == overflow_guard::verdict::refuse);
  CHECK(drop.dropped() == 1);
  overflow_guard dis{overflow_policy::disconnect, 1s, [&] { ++fired; }};
  CHECK(dis.on_full(true, deadline) == overflow_guard::verdict::refuse);
  CHECK(dis.on_full(true, deadline) == overflow_guard::verdict::refuse);
  CHECK(fired == 1);
  CHECK(dis.disconnects() == 1);
  CHECK(dis.dropped() == 2);
  overflow_guard blk{overflow_policy::block, 1s};
  auto before = std::chrono::steady_clock::now();
  CHECK(blk.on_full(true, deadline) == overflow_guard::verdict::wait);
  CHECK(deadline >= before + 1s);
  CHECK(blk.back_pressured() == 0);
  blk.timed_out();
  CHECK(blk.on_full(false, deadline) == overflow_guard::verdict::refuse);
  CHECK(blk.back_pressured() == 2);
}
