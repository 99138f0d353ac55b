// The bus and services: fan-out sharing one payload, per-pair ordering,
// auto-unsubscribe, counters (including exact drop counts), request/reply
// with timeout, supervision restart and escalation. Synchronisation is by
// messages and promises with timeouts; there are no sleeps.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>

#include <caf/all.hpp>

#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"
#include "service_test_support.hpp"
#include "test_messages.hpp"

using namespace mycelium;
namespace t = mycelium::test;
using namespace std::chrono_literals;

namespace {

constexpr auto timeout = 10s;

caf::actor_system_config& config() {
  static caf::actor_system_config cfg = [] {
    caf::actor_system_config c;
    c.set("scheduler.max-threads", 2);
    c.set("logger.console", caf::atom("none"));
    return c;
  }();
  return cfg;
}

using test_support::factory_of;
using test_support::listen;
using test_support::next;

/// A link's port for these tests: answers every offer with `answer` and
/// counts the offers (a socket link's send gate answers `enqueue` or
/// `refused`, a shared-memory link `delivered` or `refused`).
class test_port final : public port {
public:
  explicit test_port(offer_result answer = offer_result::enqueue) : answer(answer) {
  }

  offer_result offer(uint32_t, const void*) noexcept override {
    ++offers;
    return answer.load();
  }

  std::atomic<offer_result> answer;
  std::atomic<int> offers{0};
};

/// Echoes every ping as a pong with seq * 10 + its "id" parameter, and
/// records the address of the payload it received.
std::mutex addr_mtx;
std::set<const void*> seen_addresses;

class echo : public service {
public:
  using service::service;
  void on_start() override {
    id_ = caf::get_or(params(), "id", int64_t{0});
    subscribe<t::ping>([this](const t::ping& p) {
      {
        std::lock_guard<std::mutex> guard{addr_mtx};
        seen_addresses.insert(&p);
      }
      publish(t::pong{p.seq * 10 + static_cast<uint64_t>(id_)});
    });
  }

private:
  int64_t id_ = 0;
};

} // namespace

TEST_CASE("bus: fan-out to N subscribers shares one immutable payload") {
  caf::actor_system sys{config()};
  node n{sys, "fanout"};
  for (int i = 1; i <= 3; ++i) {
    caf::settings p;
    p["id"] = int64_t{i};
    REQUIRE(n.start(factory_of<echo>(), "echo" + std::to_string(i), p));
  }
  caf::scoped_actor self{sys};
  listen<t::pong>(n, self);
  seen_addresses.clear();
  CHECK(n.publish(t::ping{7}) == publish_status::ok);
  std::set<uint64_t> got;
  for (int i = 0; i < 3; ++i)
    got.insert(next<t::pong>(self).seq);
  CHECK(got == std::set<uint64_t>{71, 72, 73});
  std::lock_guard<std::mutex> guard{addr_mtx};
  CHECK(seen_addresses.size() == 1); // all three saw the same object
  auto ts = n.bus().topic(t::ping::type_id);
  CHECK(ts.subscribers == 3);
  CHECK(ts.published == 1);
  CHECK(ts.enqueued == 3);
  CHECK(ts.delivered == 3);
}

TEST_CASE("bus: order is preserved per publisher-subscriber pair") {
  caf::actor_system sys{config()};
  node n{sys, "order"};
  REQUIRE(n.start(factory_of<echo>(), "echo"));
  caf::scoped_actor self{sys};
  listen<t::pong>(n, self);
  constexpr uint64_t count = 20000;
  for (uint64_t i = 0; i < count; ++i)
    n.publish(t::ping{i});
  for (uint64_t i = 0; i < count; ++i) {
    auto p = next<t::pong>(self);
    REQUIRE(p.seq == i * 10);
  }
}

TEST_CASE("bus: publishing with no subscriber is counted, not an error") {
  caf::actor_system sys{config()};
  node n{sys, "empty"};
  CHECK(n.publish(t::pong{1}) == publish_status::no_subscriber);
  CHECK(n.publish(t::pong{2}) == publish_status::no_subscriber);
  auto ts = n.bus().topic(t::pong::type_id);
  CHECK(ts.published == 2);
  CHECK(ts.no_subscriber == 2);
  CHECK(ts.type_name == "pong");
}

TEST_CASE("bus: a subscriber that terminates is unsubscribed automatically") {
  caf::actor_system sys{config()};
  node n{sys, "unsub"};
  auto svc = n.start(factory_of<echo>(), "echo");
  REQUIRE(svc);
  CHECK(n.bus().topic(t::ping::type_id).subscribers == 1);
  caf::scoped_actor self{sys};
  self->monitor(*svc);
  self->send_exit(*svc, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(timeout) >> [] {});
  REQUIRE(down);
  CHECK(n.bus().topic(t::ping::type_id).subscribers == 0);
  CHECK(n.publish(t::ping{1}) == publish_status::no_subscriber);
  CHECK(n.bus().service("echo").restarts == 0); // a normal stop is not restarted
}

namespace {

class pricer : public service {
public:
  using service::service;
  void on_start() override {
    auto err = serve<t::price_request>([](const t::price_request& r) {
      return t::price_reply{r.symbol, r.symbol == "ABC" ? 42.5 : 1.0};
    });
    if (err)
      throw std::runtime_error(render(err));
  }
};

/// Responds to price requests never: holds the promises so they stay open.
struct silent_state {
  std::vector<caf::response_promise> pending;
};

// Takes an argument on purpose: CAF 0.17's init_fun_factory dereferences a
// null shared_ptr<tuple<>> for argument-less function actors (UBSan flags it).
caf::behavior silent_responder(caf::stateful_actor<silent_state>* self, int) {
  return {
    [self](const t::price_request&) {
      self->state.pending.push_back(self->make_response_promise());
    },
  };
}

/// On each ping, asks for a price and publishes pong{1} on success or
/// pong{1000 + errc} on failure.
class asker : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<t::ping>([this](const t::ping&) {
      request<t::price_reply>(
        t::price_request{"ABC"}, 100ms,
        [this](const t::price_reply& r) { publish(t::pong{r.px == 42.5 ? 1u : 2u}); },
        [this](const caf::error& e) {
          publish(t::pong{e.category() == errc_category ? 1000u + e.code() : 999u});
        });
    });
  }
};

} // namespace

TEST_CASE("request/reply: from outside and from a service, with errors") {
  caf::actor_system sys{config()};
  node n{sys, "rr"};
  auto none = n.request<t::price_reply>(t::price_request{"ABC"}, 1s);
  REQUIRE_FALSE(none);
  CHECK(none.error() == make_error(errc::no_responder));
  CHECK(render(none.error()).find("price_request") != std::string::npos);

  REQUIRE(n.start(factory_of<pricer>(), "pricer"));
  auto r = n.request<t::price_reply>(t::price_request{"ABC"}, timeout);
  REQUIRE(r);
  CHECK(r->px == 42.5);
  CHECK(r->symbol == "ABC");

  // a second responder for the same type is refused
  auto second = n.start(factory_of<pricer>(), "pricer2");
  REQUIRE_FALSE(second);
  CHECK(render(second.error()).find("already serves") != std::string::npos);

  caf::scoped_actor self{sys};
  listen<t::pong>(n, self);
  REQUIRE(n.start(factory_of<asker>(), "asker"));
  n.publish(t::ping{1});
  CHECK(next<t::pong>(self).seq == 1);
}

TEST_CASE("request/reply: a request without a reply times out") {
  caf::actor_system sys{config()};
  node n{sys, "timeout"};
  auto silent = sys.spawn(silent_responder, 0);
  REQUIRE_FALSE(n.bus().set_responder(t::price_request::type_id, "price_request",
                                      caf::actor_cast<caf::strong_actor_ptr>(silent)));
  auto r = n.request<t::price_reply>(t::price_request{"ABC"}, 50ms);
  REQUIRE_FALSE(r);
  CHECK(r.error() == make_error(errc::request_timeout));
  caf::scoped_actor self{sys};
  listen<t::pong>(n, self);
  REQUIRE(n.start(factory_of<asker>(), "asker"));
  n.publish(t::ping{1});
  CHECK(next<t::pong>(self).seq
        == 1000u + static_cast<uint8_t>(errc::request_timeout));
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
}

namespace {

/// Gates that let the test hold a handler in place: the handler announces it
/// is running, then waits for the release (an event, with a timeout).
struct gate {
  std::promise<void> entered;
  std::promise<void> release;
};
std::shared_ptr<gate> current_gate;
std::atomic<int> fragile_instances{0};
std::atomic<int> fragile_stops{0};

/// Announces each incarnation with pong{incarnation}, echoes pings as
/// pong{100 + seq}, and throws on fail_now (after the gate, if one is set).
class fragile : public service {
public:
  using service::service;
  void on_start() override {
    auto incarnation = ++fragile_instances;
    subscribe<t::ping>([this](const t::ping& p) { publish(t::pong{100 + p.seq}); });
    subscribe<t::fail_now>([](const t::fail_now& f) {
      if (auto g = current_gate) {
        g->entered.set_value();
        g->release.get_future().wait_for(timeout);
      }
      throw std::runtime_error(f.reason);
    });
    publish(t::pong{static_cast<uint64_t>(incarnation)});
  }
  void on_stop() override {
    ++fragile_stops;
  }
};

} // namespace

TEST_CASE("supervision: a throwing handler restarts the service, counted and logged") {
  caf::actor_system sys{config()};
  node n{sys, "sup"};
  fragile_instances = 0;
  fragile_stops = 0;
  current_gate = std::make_shared<gate>();
  caf::scoped_actor self{sys};
  listen<t::pong>(n, self);
  REQUIRE(n.start(factory_of<fragile>(), "fragile", {}, restart_policy{3, 10s}));
  CHECK(next<t::pong>(self).seq == 1); // first incarnation is up

  // Hold the handler for fail_now, queue 5 pings behind it, then let it
  // throw: the 5 pings die with the instance and must be counted as dropped.
  auto entered = current_gate->entered.get_future();
  n.publish(t::fail_now{"boom"});
  REQUIRE(entered.wait_for(timeout) == std::future_status::ready);
  for (uint64_t i = 0; i < 5; ++i)
    REQUIRE(n.publish(t::ping{i}) == publish_status::ok);
  current_gate->release.set_value();
  CHECK(next<t::pong>(self).seq == 2); // second incarnation is up
  current_gate.reset();

  auto st = n.bus().service("fragile");
  CHECK(st.restarts == 1);
  CHECK(st.handler_errors == 1);
  CHECK(st.dropped == 5);
  CHECK(fragile_stops == 1);
  auto ts = n.bus().topic(t::ping::type_id);
  CHECK(ts.dropped == 5);
  CHECK(ts.enqueued == ts.delivered + ts.dropped);
  CHECK(ts.subscribers == 1);

  // the new incarnation works
  n.publish(t::ping{7});
  CHECK(next<t::pong>(self).seq == 107);
}

TEST_CASE("supervision: exhausting the restart budget escalates and stops the node") {
  caf::actor_system sys{config()};
  node n{sys, "esc"};
  fragile_instances = 0;
  fragile_stops = 0;
  current_gate.reset();
  caf::scoped_actor self{sys};
  listen<t::pong>(n, self);
  REQUIRE(n.start(factory_of<fragile>(), "fragile", {}, restart_policy{2, 60s}));
  REQUIRE(n.start(factory_of<echo>(), "bystander"));
  CHECK(next<t::pong>(self).seq == 1);
  for (uint64_t incarnation = 2; incarnation <= 3; ++incarnation) {
    n.publish(t::fail_now{"again"});
    CHECK(next<t::pong>(self).seq == incarnation);
  }
  n.publish(t::fail_now{"last straw"}); // third failure within the window
  auto reason = n.await_stopped(timeout);
  CHECK(reason == make_error(errc::escalated));
  CHECK(render(reason).find("fragile") != std::string::npos);
  CHECK(render(reason).find("last straw") != std::string::npos);
  CHECK(n.bus().service("fragile").restarts == 2);
  CHECK(n.bus().service("fragile").handler_errors == 3);
  CHECK(fragile_stops == 3);
  // every service of the node is gone, the bystander too
  CHECK(n.bus().topic(t::ping::type_id).subscribers == 0);
}

TEST_CASE("registry: services start by name; unknown names get a clear error") {
  static bool registered = register_service<echo>("test.echo");
  CHECK(registered);
  CHECK_FALSE(register_service<echo>("test.echo")); // twice is refused
  caf::actor_system sys{config()};
  node n{sys, "reg"};
  REQUIRE(n.start("test.echo", {}, "named-echo"));
  CHECK(n.bus().topic(t::ping::type_id).subscribers == 1);
  auto bad = n.start("no.such.service");
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == make_error(errc::unknown_service));
  CHECK(render(bad.error()).find("test.echo") != std::string::npos); // lists known
}

TEST_CASE("bus: a link never gets back what it published; a full link queue refuses") {
  caf::actor_system sys{config()};
  node n{sys, "links"};
  caf::scoped_actor link_actor{sys};
  caf::scoped_actor local{sys};
  auto gate = std::make_shared<test_port>();
  auto link_ptr = caf::actor_cast<caf::strong_actor_ptr>(link_actor);
  auto lsub = n.bus().subscribe_link(t::ping::type_id, t::ping::type_name, link_ptr,
                                     gate, "link:test");
  // The link publishes (as a link does with frames it received): nobody else
  // wants it, and it is not echoed to the link itself.
  auto table = n.bus().snapshot();
  CHECK(n.bus().deliver(*table, t::ping::type_id, t::ping::type_name,
                        caf::make_message(t::ping{1}), link_ptr.get(), nullptr)
        == publish_status::no_subscriber);
  CHECK(gate->offers == 0);
  // A local publish goes to the link's port, which leaves it to the mailbox ...
  CHECK(n.publish(t::ping{2}) == publish_status::ok);
  CHECK(next<t::ping>(link_actor).seq == 2);
  CHECK(gate->offers == 1);
  // ... until its queue is full: then the link refuses, counted on the
  // topic, while a local subscriber still gets it.
  gate->answer = offer_result::refused;
  auto sub = listen<t::ping>(n, local);
  CHECK(n.publish(t::ping{3}) == publish_status::back_pressured);
  CHECK(next<t::ping>(local).seq == 3);
  CHECK(n.bus().topic(t::ping::type_id).refused == 1);
  gate->answer = offer_result::enqueue;
  CHECK(n.publish(t::ping{4}) == publish_status::ok);
  CHECK(next<t::ping>(link_actor).seq == 4);
  CHECK(next<t::ping>(local).seq == 4);
  n.bus().unsubscribe(lsub);
  n.bus().unsubscribe(sub);
}

TEST_CASE("bus: a port that takes a message counts it delivered; a refusal is not enqueued") {
  caf::actor_system sys{config()};
  node n{sys, "ports"};
  caf::scoped_actor link_actor{sys};
  auto ring = std::make_shared<test_port>(offer_result::delivered);
  auto link_ptr = caf::actor_cast<caf::strong_actor_ptr>(link_actor);
  auto lsub = n.bus().subscribe_link(t::ping::type_id, t::ping::type_name, link_ptr,
                                     ring, "link:ring");
  CHECK(n.publish(t::ping{1}) == publish_status::ok);
  ring->answer = offer_result::refused;
  CHECK(n.publish(t::ping{2}) == publish_status::back_pressured);
  auto st = n.bus().topic(t::ping::type_id);
  CHECK(st.published == 2);
  CHECK(st.enqueued == 1);
  CHECK(st.delivered == 1);
  CHECK(st.refused == 1);
  CHECK(st.no_subscriber == 0);
  CHECK(ring->offers == 2);
  // Neither reached the link's mailbox: a later mailbox message comes first.
  ring->answer = offer_result::enqueue;
  CHECK(n.publish(t::ping{3}) == publish_status::ok);
  CHECK(next<t::ping>(link_actor).seq == 3);
  CHECK(n.bus().topic(t::ping::type_id).enqueued == 2);
  n.bus().unsubscribe(lsub);
}

TEST_CASE("bus: interest excludes the asking link and watchers hear every change") {
  caf::actor_system sys{config()};
  node n{sys, "interest"};
  caf::scoped_actor link_actor{sys};
  caf::scoped_actor local{sys};
  std::atomic<int> changes{0};
  auto id = n.bus().watch([&] { ++changes; });
  auto link_ptr = caf::actor_cast<caf::strong_actor_ptr>(link_actor);
  auto gate = std::make_shared<test_port>();
  auto lsub = n.bus().subscribe_link(t::order::type_id, t::order::type_name, link_ptr,
                                     gate, "link:test");
  auto sub = listen<t::ping>(n, local);
  CHECK(changes.load() == 2);
  CHECK(n.bus().interest(link_ptr.get()) == std::vector<uint32_t>{t::ping::type_id});
  auto all = n.bus().interest(nullptr);
  CHECK(all.size() == 2);
  n.bus().unsubscribe(sub);
  CHECK(changes.load() == 3);
  CHECK(n.bus().interest(link_ptr.get()).empty());
  n.bus().unwatch(id);
  n.bus().unsubscribe(lsub);
  CHECK(changes.load() == 3);
}

TEST_CASE("bus: a link of a mesh neither relays messages nor advertises other links' interest") {
  caf::actor_system sys{config()};
  node n{sys, "mesh"};
  caf::scoped_actor link_a{sys};
  caf::scoped_actor link_b{sys};
  caf::scoped_actor local{sys};
  auto a_ptr = caf::actor_cast<caf::strong_actor_ptr>(link_a);
  auto b_ptr = caf::actor_cast<caf::strong_actor_ptr>(link_b);
  auto gate = std::make_shared<test_port>();
  // Link b's peer wants pings; a local service wants orders.
  auto bsub = n.bus().subscribe_link(t::ping::type_id, t::ping::type_name, b_ptr,
                                     gate, "link:b");
  auto sub = listen<t::order>(n, local);
  // A relaying link a would advertise both; a mesh link only the local one.
  CHECK(n.bus().interest(a_ptr.get()).size() == 2);
  CHECK(n.bus().interest(a_ptr.get(), true) == std::vector<uint32_t>{t::order::type_id});
  // A ping arriving over link a: relayed to link b, or not.
  auto table = n.bus().snapshot();
  CHECK(n.bus().deliver(*table, t::ping::type_id, t::ping::type_name,
                        caf::make_message(t::ping{7}), a_ptr.get(), nullptr)
        == publish_status::ok);
  CHECK(next<t::ping>(link_b).seq == 7);
  mycelium::payload_ref p;
  p.type_id = t::ping::type_id;
  p.boxed = caf::make_message(t::ping{8});
  p.value = const_cast<void*>(p.boxed.at(0));
  CHECK(n.bus().deliver(*table, t::ping::type_name, p, a_ptr.get(), nullptr, false)
        == publish_status::no_subscriber);
  CHECK(gate->offers == 1);
  // Local subscribers still get what a mesh link delivers.
  mycelium::payload_ref q;
  q.type_id = t::order::type_id;
  q.boxed = caf::make_message(t::order{});
  q.value = const_cast<void*>(q.boxed.at(0));
  CHECK(n.bus().deliver(*n.bus().snapshot(), t::order::type_name, q, a_ptr.get(), nullptr,
                        false)
        == publish_status::ok);
  next<t::order>(local);
  n.bus().unsubscribe(bsub);
  n.bus().unsubscribe(sub);
}
