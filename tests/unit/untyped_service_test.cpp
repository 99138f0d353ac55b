// The untyped service API (actors/untyped_service.hpp) with a C++ foreign
// host: both directions by TLV, request/reply both ways, lifecycle and
// supervision, concurrent publishers and subscription churn (run it under
// TSan), the deployment_ready payload, and raw schemas. Synchronisation is
// by condition variables and messages with timeouts; no sleeps.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <caf/all.hpp>

#include "mycelium/actors/deployment_ready.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/untyped_service.hpp"
#include "mycelium/raw_schema.hpp"
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
    t::add_message_types(c);
    return c;
  }();
  return cfg;
}

/// What the host saw, for the test thread to wait on.
struct record {
  std::mutex mtx;
  std::condition_variable cv;
  std::deque<std::pair<uint32_t, std::vector<uint8_t>>> messages;
  std::deque<std::tuple<uint64_t, uint32_t, std::vector<uint8_t>>> requests;
  std::shared_ptr<untyped_handle> handle;
  int starts = 0;
  int stops = 0;
  std::string stop_reason;
  caf::error start_with; ///< what the next start reports

  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, timeout, pred);
  }
};

/// A foreign host that starts at once and records everything.
class recording_host : public foreign_host {
public:
  explicit recording_host(std::shared_ptr<record> r) : r_(std::move(r)) {}

  void start(std::shared_ptr<untyped_handle> h) override {
    caf::error err;
    {
      std::lock_guard<std::mutex> guard{r_->mtx};
      r_->handle = h;
      ++r_->starts;
      err = r_->start_with;
    }
    r_->cv.notify_all();
    h->started(std::move(err));
  }
  void deliver(uint32_t type_id, const uint8_t* p, size_t n) override {
    {
      std::lock_guard<std::mutex> guard{r_->mtx};
      r_->messages.emplace_back(type_id, std::vector<uint8_t>(p, p + n));
    }
    r_->cv.notify_all();
  }
  void request(uint64_t id, uint32_t type_id, const uint8_t* p, size_t n) override {
    {
      std::lock_guard<std::mutex> guard{r_->mtx};
      r_->requests.emplace_back(id, type_id, std::vector<uint8_t>(p, p + n));
    }
    r_->cv.notify_all();
  }
  void stop(const caf::error& reason) override {
    {
      std::lock_guard<std::mutex> guard{r_->mtx};
      ++r_->stops;
      r_->stop_reason = reason ? render(reason) : "";
    }
    r_->cv.notify_all();
  }

private:
  std::shared_ptr<record> r_;
};

service_factory recording(std::shared_ptr<record> r) {
  return untyped_service_factory(
    [r](const service_context&) { return std::make_shared<recording_host>(r); });
}

template <class T>
std::vector<uint8_t> tlv(const T& x) {
  std::vector<uint8_t> out;
  encode_payload(x, out);
  return out;
}

/// pong for every ping; serves price_request; counts pongs... a C++ peer.
class cpp_side : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<t::ping>([this](const t::ping& p) { publish(t::pong{p.seq + 1}); });
    if (auto err = serve<t::price_request>([](const t::price_request& r) {
          return t::price_reply{r.symbol, 42.5};
        }))
      throw std::runtime_error(render(err));
  }
};

} // namespace

TEST_CASE("untyped: C++ publishes reach the host as TLV, host publishes reach C++ handlers") {
  caf::actor_system sys{config()};
  node n{sys, "n"};
  n.use_schema(t::descriptor());
  auto r = std::make_shared<record>();
  REQUIRE(n.start(recording(r), "foreign"));
  REQUIRE(n.start(test_support::factory_of<cpp_side>(), "cpp"));
  auto h = r->handle;
  REQUIRE(h != nullptr);
  CHECK(h->name() == "foreign");
  CHECK(h->node_name() == "n");
  REQUIRE(!h->subscribe(t::pong::type_id));
  CHECK(h->subscribe(4242) == errc::unknown_type);
  // Host -> C++ (ping) -> C++ publishes pong -> host.
  auto bytes = tlv(t::ping{41});
  publish_status st = publish_status::no_subscriber;
  REQUIRE(h->publish(t::ping::type_id, bytes.data(), bytes.size(), &st) == errc::none);
  CHECK(st == publish_status::ok);
  REQUIRE(r->wait([&] { return !r->messages.empty(); }));
  CHECK(r->messages.front().first == t::pong::type_id);
  CHECK(r->messages.front().second == tlv(t::pong{42}));
  // The C++ decoder checks what the host publishes.
  std::vector<uint8_t> junk{0xff, 0xff, 0xff};
  CHECK(h->publish(t::ping::type_id, junk.data(), junk.size()) != errc::none);
  CHECK(h->publish(4242, junk.data(), 0) == errc::unknown_type);
  // A C++ publish from outside any service.
  n.publish(t::pong{7});
  REQUIRE(r->wait([&] { return r->messages.size() == 2; }));
  CHECK(r->messages.back().second == tlv(t::pong{7}));
  h->unsubscribe(t::pong::type_id);
  CHECK(n.publish(t::pong{8}) == publish_status::no_subscriber);
  auto s = h->stats();
  CHECK(s.published == 1);
  CHECK(s.delivered == 2);
  CHECK(s.dropped == 0);
}

TEST_CASE("untyped: request/reply in both directions") {
  caf::actor_system sys{config()};
  node n{sys, "n"};
  n.use_schema(t::descriptor());
  auto r = std::make_shared<record>();
  REQUIRE(n.start(recording(r), "foreign"));
  REQUIRE(n.start(test_support::factory_of<cpp_side>(), "cpp"));
  auto h = r->handle;
  // Host -> C++ responder.
  auto req = tlv(t::price_request{"ACME"});
  auto rep = h->request(t::price_request::type_id, req.data(), req.size(), 5s);
  REQUIRE(rep);
  CHECK(rep->type_id == t::price_reply::type_id);
  CHECK(rep->payload == tlv(t::price_reply{"ACME", 42.5}));
  // No responder for pong.
  auto none = h->request(t::pong::type_id, nullptr, 0, 1s);
  REQUIRE(!none);
  CHECK(none.error() == errc::no_responder);
  // C++ -> host responder, answered from another thread.
  auto r2 = std::make_shared<record>();
  node n2{sys, "n2"};
  n2.use_schema(t::descriptor());
  REQUIRE(n2.start(recording(r2), "server"));
  REQUIRE(!r2->handle->serve(t::price_request::type_id));
  std::thread answer{[&] {
    if (!r2->wait([&] { return !r2->requests.empty(); }))
      return;
    auto [id, type_id, payload] = r2->requests.front();
    t::price_request in;
    if (decode_payload(payload.data(), payload.size(), in) != errc::none)
      return;
    auto out = tlv(t::price_reply{in.symbol, 1.25});
    (void) r2->handle->reply(id, t::price_reply::type_id, out.data(), out.size());
  }};
  auto got = n2.request<t::price_reply>(t::price_request{"XYZ"}, 5s);
  answer.join();
  REQUIRE(got);
  CHECK(got->symbol == "XYZ");
  CHECK(got->px == 1.25);
  // An error reply.
  std::thread refuse{[&] {
    if (!r2->wait([&] { return r2->requests.size() == 2; }))
      return;
    r2->handle->reply_error(std::get<0>(r2->requests.back()), "no price today");
  }};
  auto err = n2.request<t::price_reply>(t::price_request{"XYZ"}, 5s);
  refuse.join();
  REQUIRE(!err);
  CHECK(render(err.error()).find("no price today") != std::string::npos);
}

TEST_CASE("untyped: a failed start, a failure restarted by the supervisor, a normal quit") {
  caf::actor_system sys{config()};
  node n{sys, "n"};
  n.use_schema(t::descriptor());
  auto bad = std::make_shared<record>();
  bad->start_with = make_error(errc::service_failed, "on_start raised ValueError");
  restart_policy no_restart;
  no_restart.max_restarts = 0;
  auto failed = n.start(recording(bad), "bad", {}, no_restart);
  REQUIRE(!failed);
  CHECK(render(failed.error()).find("on_start raised ValueError") != std::string::npos);

  auto r = std::make_shared<record>();
  REQUIRE(n.start(recording(r), "flaky"));
  auto first = r->handle;
  first->fail("handler raised RuntimeError");
  REQUIRE(r->wait([&] { return r->starts == 2; })); // restarted: a fresh incarnation
  CHECK(r->stops == 1);
  CHECK(r->stop_reason.find("handler raised RuntimeError") != std::string::npos);
  CHECK(!first->alive());
  std::vector<uint8_t> none;
  CHECK(first->publish(t::pong::type_id, none.data(), 0) == errc::service_failed);
  auto s = n.bus().service("flaky");
  CHECK(s.handler_errors == 1);
  CHECK(s.restarts == 1);
  r->handle->quit();
  REQUIRE(r->wait([&] { return r->stops == 2; }));
  CHECK(r->stop_reason.empty());
  CHECK(r->starts == 2); // a normal end is not restarted
}

TEST_CASE("untyped: concurrent publishers and subscription churn lose nothing") {
  caf::actor_system sys{config()};
  node n{sys, "n"};
  n.use_schema(t::descriptor());
  auto pub = std::make_shared<record>();
  auto sub = std::make_shared<record>();
  auto churn = std::make_shared<record>();
  REQUIRE(n.start(recording(pub), "publisher"));
  REQUIRE(n.start(recording(sub), "subscriber"));
  REQUIRE(n.start(recording(churn), "churn"));
  REQUIRE(!sub->handle->subscribe(t::ping::type_id));
  constexpr int threads = 4;
  constexpr int each = 5000;
  std::atomic<bool> stop{false};
  std::thread toggler{[&] {
    while (!stop.load()) {
      (void) churn->handle->subscribe(t::ping::type_id);
      churn->handle->unsubscribe(t::ping::type_id);
    }
  }};
  std::vector<std::thread> ts;
  for (int k = 0; k < threads; ++k)
    ts.emplace_back([&, k] {
      for (int i = 0; i < each; ++i) {
        auto b = tlv(t::ping{static_cast<uint64_t>(k * each + i)});
        (void) pub->handle->publish(t::ping::type_id, b.data(), b.size());
      }
    });
  for (auto& x : ts)
    x.join();
  stop = true;
  toggler.join();
  REQUIRE(sub->wait([&] { return sub->messages.size() == threads * each; }));
  std::vector<bool> seen(threads * each);
  for (auto& [type_id, payload] : sub->messages) {
    t::ping p;
    REQUIRE(decode_payload(payload.data(), payload.size(), p) == errc::none);
    seen[p.seq] = true;
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
  CHECK(n.bus().service("subscriber").delivered == threads * each);
}

TEST_CASE("untyped: deployment_ready reaches a host with node name and node count") {
  caf::actor_system sys{config()};
  node n{sys, "alpha"};
  n.use_schema(t::descriptor());
  auto r = std::make_shared<record>();
  REQUIRE(n.start(recording(r), "foreign"));
  REQUIRE(!r->handle->subscribe(deployment_ready::type_id));
  n.publish(deployment_ready{"alpha", 3});
  REQUIRE(r->wait([&] { return !r->messages.empty(); }));
  std::vector<uint8_t> expect;
  wire::writer w{expect};
  w.string(1, "alpha");
  w.scalar(2, uint32_t{3});
  CHECK(r->messages.front().second == expect);
}

TEST_CASE("untyped: a service without its node's schema does not start") {
  caf::actor_system sys{config()};
  node n{sys, "n"};
  auto r = std::make_shared<record>();
  auto started = n.start(recording(r), "foreign");
  REQUIRE(!started);
  CHECK(render(started.error()).find("needs its node's schema") != std::string::npos);
}

TEST_CASE("raw schema: refuses bad announcements and carries payloads unchanged") {
  auto& d = t::descriptor();
  CHECK(!raw_schema::make("", d.digest, d.types));
  CHECK(!raw_schema::make("p", d.digest, {}));
  auto dup = d.types;
  dup.push_back(dup.front());
  auto e = raw_schema::make("p", d.digest, dup);
  REQUIRE(!e);
  CHECK(render(e.error()).find("appears twice") != std::string::npos);
  auto ctl = d.types;
  ctl.front().type_id |= 0x80000000u;
  CHECK(!raw_schema::make("p", d.digest, ctl));
  auto s = raw_schema::make(d.package, d.digest, d.types);
  REQUIRE(s);
  auto& rd = (*s)->descriptor();
  CHECK(rd.find(t::ping::type_id) != nullptr);
  CHECK(rd.find(4242) == nullptr);
  auto bytes = tlv(t::ping{99});
  caf::message msg;
  REQUIRE(rd.decode(t::ping::type_id, bytes.data(), bytes.size(), msg) == errc::none);
  std::vector<uint8_t> again;
  uint32_t id = 0;
  REQUIRE(rd.encode(msg, again, id));
  CHECK(id == t::ping::type_id);
  CHECK(again == bytes);
  auto hello = make_hello(rd, "py", "svc", 1);
  CHECK(hello.schema_digest == d.digest);
  CHECK(hello.types.size() == d.types.size());
}
