// Service placement: the same service class on CAF's worker pool and on the
// node's I/O loop gives the same results; loop handlers run on the loop's
// thread (also between two loop services); a loop handler over its budget is
// logged and counted; loop placement without a middleman is refused.
// An idle request from outside the loop holds its strategy. Synchronisation
// is by messages (or the loop's state) with timeouts; one test counts the
// loop's turns over a 20 ms window.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <atomic>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/transports/loop/idle_request.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "mycelium/transports/system_config.hpp"
#include "service_test_support.hpp"
#include "test_messages.hpp"

using namespace mycelium;
namespace t = mycelium::test;
namespace mt = mycelium::transports;
using namespace std::chrono_literals;

namespace {

constexpr auto timeout = 10s;

struct loop_config : caf::actor_system_config {
  loop_config() {
    mycelium::apply_defaults(*this); // the I/O loop and the scheduler defaults
    set("scheduler.max-threads", 2);
    set("logger.console", caf::atom("none"));
  }
};

/// Where every handler of the services below ran, by service name.
std::mutex where_mtx;
std::map<std::string, std::set<std::thread::id>> where_ran;

void record_thread(const std::string& service) {
  std::lock_guard<std::mutex> guard{where_mtx};
  where_ran[service].insert(std::this_thread::get_id());
}

/// A stateful service: answers each ping with pong{running sum of seq *
/// its "factor" parameter}; the answer depends on every message before it.
class accumulator : public service {
public:
  using service::service;
  void on_start() override {
    factor_ = static_cast<uint64_t>(caf::get_or(params(), "factor", int64_t{1}));
    subscribe<t::ping>([this](const t::ping& p) {
      record_thread(service_name());
      sum_ += p.seq * factor_;
      publish(t::pong{sum_});
    });
    // A request served from the same class works in either placement.
    auto err = serve<t::price_request>([this](const t::price_request& r) {
      record_thread(service_name());
      return t::price_reply{r.symbol, static_cast<double>(sum_)};
    });
    REQUIRE(err == caf::none);
  }

private:
  uint64_t factor_ = 1;
  uint64_t sum_ = 0;
};

/// Forwards every pong as a ping with seq + 1 while seq < 1000: with an
/// accumulator this makes a chain of 1000 hops that never leaves the
/// services.
class relay : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<t::pong>([this](const t::pong& p) {
      record_thread(service_name());
      if (++hops_ < 1000)
        publish(t::ping{p.seq % 7 + 1});
      else
        publish(t::price_reply{"done", static_cast<double>(p.seq)});
    });
  }

private:
  int hops_ = 0;
};

/// Spins for the "spin_ms" parameter in each fail_now handler (a long
/// computation; not a synchronisation), then publishes pong.
class slow : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<t::fail_now>([this](const t::fail_now&) {
      auto ms = caf::get_or(params(), "spin_ms", int64_t{20});
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{ms};
      while (std::chrono::steady_clock::now() < until) {
        // compute
      }
      publish(t::pong{1});
    });
  }
};

/// Quits in its pong handler (after answering with a price_reply).
class quitter : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<t::pong>([this](const t::pong& p) {
      publish(t::price_reply{"quit", static_cast<double>(p.seq)});
      quit();
    });
  }
};

using pace_atom = caf::atom_constant<caf::atom("pace")>;

/// On ping{n}: sends itself n messages, the k-th after k ms, scheduled in
/// reverse (due order, not scheduling order, decides); publishes
/// pong{1000 * k + early} for the k-th, `early` counting the ones that
/// came before their time.
class pacer : public service {
public:
  using service::service;
  void on_start() override {
    subscribe<t::ping>([this](const t::ping& p) {
      auto t0 = std::chrono::steady_clock::now();
      due_.resize(p.seq + 1);
      for (uint64_t k = p.seq; k >= 1; --k) {
        due_[k] = t0 + std::chrono::milliseconds(k);
        delayed_send(this, std::chrono::milliseconds(k), pace_atom::value, k);
      }
    });
    set_default_handler([this](caf::scheduled_actor*,
                               caf::message_view& x) -> caf::result<caf::message> {
      if (x.content().match_elements<pace_atom, uint64_t>()) {
        auto k = x.content().get_as<uint64_t>(1);
        record_thread(service_name());
        if (std::chrono::steady_clock::now() < due_.at(k))
          ++early_;
        publish(t::pong{1000 * k + early_});
      }
      return caf::message{};
    });
  }

private:
  std::vector<std::chrono::steady_clock::time_point> due_;
  uint64_t early_ = 0;
};

using test_support::factory_of;
using test_support::listen;
using test_support::next;

std::thread::id loop_thread(caf::actor_system& sys) {
  return sys.middleman().backend().thread_id();
}

/// Runs the accumulator in `where` over a fixed input; returns its outputs.
std::vector<uint64_t> run_accumulator(placement where) {
  loop_config cfg;
  caf::actor_system sys{cfg};
  node n{sys, "acc"};
  caf::settings params;
  params["factor"] = int64_t{3};
  auto name = std::string{"acc-"} + to_string(where);
  REQUIRE(n.start(factory_of<accumulator>(), name, params, {}, where));
  caf::scoped_actor self{sys};
  auto sub = listen<t::pong>(n, self);
  std::vector<uint64_t> out;
  for (uint64_t i = 1; i <= 200; ++i) {
    REQUIRE(n.publish(t::ping{i}) == publish_status::ok);
    out.push_back(next<t::pong>(self).seq);
  }
  auto reply = n.request<t::price_reply>(t::price_request{"x"}, timeout);
  REQUIRE(reply);
  out.push_back(static_cast<uint64_t>(reply->px));
  n.bus().unsubscribe(sub);
  std::lock_guard<std::mutex> guard{where_mtx};
  auto& threads = where_ran[name];
  REQUIRE(!threads.empty());
  if (where == placement::loop) {
    CHECK(threads.size() == 1);
    CHECK(*threads.begin() == loop_thread(sys));
  } else {
    CHECK(threads.count(loop_thread(sys)) == 0);
  }
  return out;
}

/// Redirects this process's stderr into a file while alive.
class stderr_capture {
public:
  stderr_capture() {
    char tmpl[] = "/tmp/mycelium-placement-XXXXXX"; // mkstemp fills in the Xs
    fd_ = ::mkstemp(tmpl);
    REQUIRE(fd_ >= 0);
    path_ = tmpl;
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd_, STDERR_FILENO);
  }
  ~stderr_capture() {
    restore();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::string text() {
    std::fflush(stderr);
    std::ifstream in{path_};
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  void restore() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_, STDERR_FILENO);
      ::close(saved_);
      saved_ = -1;
    }
  }

private:
  int fd_ = -1;
  int saved_ = -1;
  std::string path_;
};

} // namespace

TEST_CASE("placement names parse and print") {
  placement p = placement::pool;
  CHECK(parse_placement("loop", p) == caf::none);
  CHECK(p == placement::loop);
  CHECK(std::string{to_string(p)} == "loop");
  auto err = parse_placement("thread", p);
  CHECK(render(err).find("use pool or loop") != std::string::npos);
}

TEST_CASE("the same service class gives identical results on the pool and on the loop") {
  auto pool = run_accumulator(placement::pool);
  auto loop = run_accumulator(placement::loop);
  REQUIRE(pool.size() == 201);
  CHECK(pool == loop);
  CHECK(pool[1] == 3 * (1 + 2)); // running sums, not a hard-coded table
}

TEST_CASE("between two loop services a message never leaves the loop thread") {
  loop_config cfg;
  caf::actor_system sys{cfg};
  node n{sys, "chain"};
  {
    std::lock_guard<std::mutex> guard{where_mtx};
    where_ran["chain-acc"].clear();
    where_ran["chain-relay"].clear();
  }
  REQUIRE(n.start(factory_of<accumulator>(), "chain-acc", {}, {}, placement::loop));
  REQUIRE(n.start(factory_of<relay>(), "chain-relay", {}, {}, placement::loop));
  caf::scoped_actor self{sys};
  auto sub = listen<t::price_reply>(n, self);
  auto* loop = mt::io_loop::of(sys);
  REQUIRE(loop != nullptr);
  auto before = loop->stats();
  REQUIRE(n.publish(t::ping{1}) == publish_status::ok);
  auto done = next<t::price_reply>(self);
  CHECK(done.symbol == "done");
  auto after = loop->stats();
  // 1000 pings and 1000 pongs went from service to service as direct calls
  // (or inside an already running resume), not one loop post per hop.
  CHECK(after.resumed - before.resumed < 100);
  std::lock_guard<std::mutex> guard{where_mtx};
  for (auto name : {"chain-acc", "chain-relay"}) {
    CAPTURE(name);
    REQUIRE(where_ran[name].size() == 1);
    CHECK(*where_ran[name].begin() == loop_thread(sys));
  }
  n.bus().unsubscribe(sub);
}

TEST_CASE("a loop service that quits in a handler run as a direct call terminates") {
  // The accumulator (on the loop) answers a ping with a pong on the loop's
  // thread; the idle quitter gets it as a direct call and quits there. The
  // quit must complete without another message reaching the quitter.
  loop_config cfg;
  caf::actor_system sys{cfg};
  node n{sys, "quit"};
  REQUIRE(n.start(factory_of<accumulator>(), "quit-acc", {}, {}, placement::loop));
  auto q = n.start(factory_of<quitter>(), "quit-quitter", {}, {}, placement::loop);
  REQUIRE(q);
  caf::scoped_actor self{sys};
  self->monitor(*q);
  auto sub = listen<t::price_reply>(n, self);
  auto* loop = mt::io_loop::of(sys);
  REQUIRE(loop != nullptr);
  auto before = loop->stats();
  REQUIRE(n.publish(t::ping{3}) == publish_status::ok);
  CHECK(next<t::price_reply>(self).symbol == "quit");
  bool down = false;
  self->receive([&](caf::down_msg& dm) { down = dm.source == q->address(); },
                caf::after(timeout) >> [] {});
  CHECK_MESSAGE(down, "the quitter did not terminate after quit() in a direct handler");
  if (!down)
    caf::anon_send(*q, t::pong{0}); // any message lets CAF finish the quit: no hang
  CHECK(loop->stats().resumed - before.resumed < 10);
  n.bus().unsubscribe(sub);
}

TEST_CASE("a loop handler over its budget is logged with the service name and counted") {
  loop_config cfg;
  caf::actor_system sys{cfg};
  node n{sys, "budget"};
  n.handler_budget(2ms);
  caf::settings params;
  params["spin_ms"] = int64_t{20};
  REQUIRE(n.start(factory_of<slow>(), "slowpoke", params, {}, placement::loop));
  REQUIRE(n.start(factory_of<slow>(), "pooled", params, {}, placement::pool));
  caf::scoped_actor self{sys};
  auto sub = listen<t::pong>(n, self);
  stderr_capture cap;
  REQUIRE(n.publish(t::fail_now{"go"}) == publish_status::ok);
  next<t::pong>(self);
  next<t::pong>(self);
  n.stop();
  auto text = cap.text();
  cap.restore();
  CHECK(n.bus().service("slowpoke").slow_handlers == 1);
  CHECK(n.bus().service("pooled").slow_handlers == 0); // the pool is not timed
  CHECK(text.find("budget/slowpoke") != std::string::npos);
  CHECK(text.find("handler of 'fail_now'") != std::string::npos);
  CHECK(text.find("over its budget of 2000 us") != std::string::npos);
  CHECK(text.find("place the service on the pool") != std::string::npos);
  n.bus().unsubscribe(sub);
}

TEST_CASE("a failed loop service is restarted on the loop") {
  struct thrower : service {
    using service::service;
    void on_start() override {
      subscribe<t::fail_now>([](const t::fail_now& f) { throw std::runtime_error(f.reason); });
      subscribe<t::ping>([this](const t::ping& p) {
        record_thread("thrower");
        publish(t::pong{p.seq});
      });
    }
  };
  loop_config cfg;
  caf::actor_system sys{cfg};
  node n{sys, "restart"};
  {
    std::lock_guard<std::mutex> guard{where_mtx};
    where_ran["thrower"].clear();
  }
  REQUIRE(n.start(factory_of<thrower>(), "thrower", {}, {}, placement::loop));
  caf::scoped_actor self{sys};
  auto sub = listen<t::pong>(n, self);
  {
    stderr_capture quiet; // the expected error log
    REQUIRE(n.publish(t::fail_now{"boom"}) == publish_status::ok);
    // The restarted instance subscribes again; wait until it answers.
    bool answered = false;
    for (int i = 0; i < 1000 && !answered; ++i) {
      n.publish(t::ping{7});
      self->receive([&](const t::pong& p) { answered = p.seq == 7; },
                    caf::after(10ms) >> [] {});
    }
    REQUIRE(answered);
    CHECK(n.bus().service("thrower").restarts == 1);
  }
  std::lock_guard<std::mutex> guard{where_mtx};
  CHECK(where_ran["thrower"].size() == 1);
  CHECK(*where_ran["thrower"].begin() == loop_thread(sys));
  n.bus().unsubscribe(sub);
}

TEST_CASE("loop placement without CAF's middleman is refused with what to do") {
  caf::actor_system_config cfg;
  cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{cfg};
  node n{sys, "plain"};
  auto r = n.start(factory_of<accumulator>(), "acc", {}, {}, placement::loop);
  REQUIRE(!r);
  auto text = render(r.error());
  CHECK(text.find("placement loop") != std::string::npos);
  CHECK(text.find("load_io_loop") != std::string::npos);
}

TEST_CASE("a loop service's delayed_send to itself is timed by the loop, on its thread") {
  for (auto where : {placement::pool, placement::loop}) {
    CAPTURE(to_string(where));
    loop_config cfg;
    caf::actor_system sys{cfg};
    node n{sys, "pace"};
    auto name = std::string{"pacer-"} + to_string(where);
    {
      std::lock_guard<std::mutex> guard{where_mtx};
      where_ran[name].clear();
    }
    REQUIRE(n.start(factory_of<pacer>(), name, {}, {}, where));
    caf::scoped_actor self{sys};
    auto sub = listen<t::pong>(n, self);
    auto* loop = mt::io_loop::of(sys);
    REQUIRE(loop != nullptr);
    auto before = loop->stats();
    REQUIRE(n.publish(t::ping{5}) == publish_status::ok);
    // In due order, none early; the loop sleeps between them (nothing
    // else runs here), so its sleep ends for each.
    for (uint64_t k = 1; k <= 5; ++k)
      CHECK(next<t::pong>(self).seq == 1000 * k);
    auto after = loop->stats();
    std::lock_guard<std::mutex> guard{where_mtx};
    auto& threads = where_ran[name];
    if (where == placement::loop) {
      CHECK(after.timers - before.timers == 5);
      CHECK(after.sleeps > before.sleeps);
      CHECK(threads == std::set<std::thread::id>{loop_thread(sys)});
    } else {
      CHECK(after.timers == before.timers); // CAF's clock
      CHECK(threads.count(loop_thread(sys)) == 0);
    }
    n.bus().unsubscribe(sub);
  }
}

TEST_CASE("timed messages reach a loop service while a lender runs the loop's turns") {
  // Another thread lends its time to the loop in bursts, as a spinning
  // Python caller does: a tick is then delivered by the lender's turns or
  // by the loop thread, never lost and never early.
  loop_config cfg;
  caf::actor_system sys{cfg};
  node n{sys, "pace"};
  {
    std::lock_guard<std::mutex> guard{where_mtx};
    where_ran["pacer-lent"].clear();
  }
  REQUIRE(n.start(factory_of<pacer>(), "pacer-lent", {}, {}, placement::loop));
  auto* loop = mt::io_loop::of(sys);
  REQUIRE(loop != nullptr);
  loop->enable_lending();
  std::atomic<bool> stop{false};
  std::thread lender{[&] {
    auto never = [](void*) noexcept { return false; };
    while (!stop.load()) {
      (void) loop->lend(never, nullptr, std::chrono::steady_clock::now() + 300us);
      std::this_thread::sleep_for(700us);
    }
  }};
  caf::scoped_actor self{sys};
  auto sub = listen<t::pong>(n, self);
  auto before = loop->stats();
  REQUIRE(n.publish(t::ping{20}) == publish_status::ok);
  for (uint64_t k = 1; k <= 20; ++k)
    CHECK(next<t::pong>(self).seq == 1000 * k);
  stop = true;
  lender.join();
  auto after = loop->stats();
  CHECK(after.timers - before.timers == 20);
  CHECK(after.lends > before.lends);
  std::lock_guard<std::mutex> guard{where_mtx};
  CHECK(where_ran["pacer-lent"].size() <= 2); // the loop thread, the lender
  n.bus().unsubscribe(sub);
}

TEST_CASE("an idle request from outside the loop holds the loop's strategy until reset") {
  // What a node with loop services holds (topology_node): the loop spins
  // for its inbox, and polls epoll only one turn in socket_poll_interval,
  // since nothing waits on a socket.
  loop_config cfg;
  caf::actor_system sys{cfg};
  auto* loop = mt::io_loop::of(sys);
  REQUIRE(loop != nullptr);
  auto wait_for_mode = [&](mt::wait_mode m) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (loop->current_mode() != m && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    return loop->current_mode() == m;
  };
  auto req = mt::idle_request::make(sys, mt::idle_strategy::busy());
  REQUIRE(req);
  REQUIRE(wait_for_mode(mt::wait_mode::busy_poll));
  auto before = loop->stats();
  // The loop turns without work meanwhile: a window to count its turns in.
  std::this_thread::sleep_for(20ms);
  auto after = loop->stats();
  auto turns = after.turns - before.turns;
  auto polls = after.socket_polls - before.socket_polls;
  CAPTURE(turns);
  CAPTURE(polls);
  CHECK(turns > 100);
  CHECK(polls * 8 < turns); // 1 in 32 (was every turn)
  req->reset();
  CHECK(wait_for_mode(mt::wait_mode::block));
}

TEST_CASE("an idle request needs the I/O loop") {
  caf::actor_system_config cfg;
  cfg.set("logger.console", caf::atom("none"));
  cfg.load<caf::io::middleman>(); // CAF's own backend, not the loop
  caf::actor_system sys{cfg};
  auto req = mt::idle_request::make(sys, mt::idle_strategy::busy());
  REQUIRE_FALSE(req);
  CHECK(render(req.error()).find("load_io_loop") != std::string::npos);
}
