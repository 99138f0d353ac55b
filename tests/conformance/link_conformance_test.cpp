// The link conformance suite: written once, run over every link kind with
// the receiving services (the peer's and the driver's collector) on CAF's
// worker pool and on the node's I/O loop (TEST_CASE_TEMPLATE over
// `every_link`). Each test starts real peer processes
// (mycelium-link-peer), talks to them over a real link and synchronises on
// events (link state, reports) with timeouts; never on sleeps.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <mutex>
#include <optional>

#include <sys/stat.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "child_process.hpp"
#include "link_test.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/link_event.hpp"
#include "mycelium/transports/remote_node.hpp"
#include "mycelium/transports/shm/segment.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "peer_service.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace mt = mycelium::transports;
namespace lt = mycelium::linktest;
using mycelium::test_support::child_process;
using mycelium::test_support::temp_dir;
using mycelium::publish_status;

namespace {

// -- link kinds and placements under test -----------------------------------------

/// One case of the suite: a link kind, and where the receiving services run
/// (the peer's services and the driver's collector), on CAF's worker pool
/// or on the node's I/O loop.
template <mt::link_kind Kind, mycelium::placement Where>
struct link_case {
  static constexpr mt::link_kind kind = Kind;
  static constexpr mycelium::placement where = Where;
};

using unix_pool_link = link_case<mt::link_kind::unix_socket, mycelium::placement::pool>;
using unix_loop_link = link_case<mt::link_kind::unix_socket, mycelium::placement::loop>;
using tcp_pool_link = link_case<mt::link_kind::tcp, mycelium::placement::pool>;
using tcp_loop_link = link_case<mt::link_kind::tcp, mycelium::placement::loop>;
using shm_pool_link = link_case<mt::link_kind::shm, mycelium::placement::pool>;
using shm_loop_link = link_case<mt::link_kind::shm, mycelium::placement::loop>;

/// Every link kind in both placements: what each TEST_CASE_TEMPLATE_APPLY
/// below runs over.
using every_link = std::tuple<unix_pool_link, unix_loop_link, tcp_pool_link,
                              tcp_loop_link, shm_pool_link, shm_loop_link>;

/// The link kinds whose data cross a socket.
using socket_links = std::tuple<unix_pool_link, unix_loop_link, tcp_pool_link,
                                tcp_loop_link>;

} // namespace

// Case names read "...<shm_loop_link>", so that -tc can pick one.
TYPE_TO_STRING(unix_pool_link);
TYPE_TO_STRING(unix_loop_link);
TYPE_TO_STRING(tcp_pool_link);
TYPE_TO_STRING(tcp_loop_link);
TYPE_TO_STRING(shm_pool_link);
TYPE_TO_STRING(shm_loop_link);

namespace {

// -- what the driver's node receives ---------------------------------------------

struct inbox {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<lt::pong> pongs;
  std::map<uint64_t, lt::report> reports;
  mycelium::conformance::data_checker data;
  std::map<std::string, uint64_t> chats; // by origin
  std::atomic<bool> ignore_data{false};   // for streams only the peer checks
  std::vector<mt::link_event> events;     // link up/down, as services see them

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, timeout, [&] { return pred(); });
  }
};

class collector : public mycelium::service {
public:
  collector(caf::actor_config& cfg, mycelium::service_context ctx,
            std::shared_ptr<inbox> box)
    : service(cfg, std::move(ctx)), box_(std::move(box)) {
  }

  void on_start() override {
    subscribe<lt::pong>([this](const lt::pong& p) { put([&] { box_->pongs.push_back(p); }); });
    subscribe<lt::report>([this](const lt::report& r) {
      put([&] { box_->reports[r.token] = r; });
    });
    subscribe<lt::data>([this](const lt::data& d) {
      if (!box_->ignore_data.load(std::memory_order_relaxed))
        put([&] { box_->data.add(d); });
    });
    subscribe<lt::chat>([this](const lt::chat& c) { put([&] { ++box_->chats[c.origin]; }); });
    subscribe<mt::link_event>([this](const mt::link_event& e) {
      put([&] { box_->events.push_back(e); });
    });
  }

private:
  template <class F>
  void put(F f) {
    std::lock_guard<std::mutex> guard{box_->mtx};
    f();
    box_->cv.notify_all();
  }

  std::shared_ptr<inbox> box_;
};

/// Publishes `data` 1..N in one handler when told "burst N" (a `command`).
class burster : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    subscribe<lt::command>([this](const lt::command& c) {
      std::istringstream in{c.text};
      std::string verb;
      uint64_t n = 0;
      in >> verb >> n;
      if (verb == "burst")
        for (uint64_t i = 1; i <= n; ++i)
          publish(mycelium::conformance::make_data(i, 64));
    });
  }
};

/// Makes its interest in `pong` news to the peer, then publishes a `ping`
/// at once, `cycles` times: each cycle withdraws that interest and waits for
/// a `report` (the peer answers after it applied the withdrawal), then
/// subscribes and pings in one handler. The peer echoes a ping only if it
/// already knows we listen, so every pong proves that our interest reached
/// it before the data we published right after subscribing. Pongs go to
/// the inbox.
class resubscriber : public mycelium::service {
public:
  resubscriber(caf::actor_config& cfg, mycelium::service_context ctx,
               std::shared_ptr<inbox> box, uint64_t cycles)
    : service(cfg, std::move(ctx)), box_(std::move(box)), cycles_(cycles) {
  }

  void on_start() override {
    subscribe<lt::report>([this](const lt::report& r) {
      subscribe<lt::pong>([this](const lt::pong& p) { on_pong(p); });
      record(publish(lt::ping{r.token, {}}));
    });
    withdraw(1);
  }

private:
  void on_pong(const lt::pong& p) {
    {
      std::lock_guard<std::mutex> guard{box_->mtx};
      box_->pongs.push_back(p);
      box_->cv.notify_all();
    }
    if (p.seq < cycles_)
      withdraw(p.seq + 1);
  }

  void withdraw(uint64_t next) {
    unsubscribe<lt::pong>();
    record(publish(lt::report_request{next}));
  }

  /// A refused publish would stall the cycle: made visible as a pong with
  /// seq 0 (the test fails on it with the status).
  void record(publish_status st) {
    if (st == publish_status::ok)
      return;
    std::lock_guard<std::mutex> guard{box_->mtx};
    box_->pongs.push_back(lt::pong{0, {static_cast<uint8_t>(st)}});
    box_->cv.notify_all();
  }

  std::shared_ptr<inbox> box_;
  uint64_t cycles_;
};

struct system_config : caf::actor_system_config {
  system_config() {
    mt::load_io_loop(*this); // CAF's middleman, able to run shm links
    set("logger.verbosity", caf::atom("quiet"));
  }
};

/// One driver node with a collector, plus helpers to start peers and links.
/// The collector and the peers' services run where `Link::where` says.
template <class Link>
struct harness {
  temp_dir dir{"mycelium-conf-"}; // socket files and peer logs
  system_config cfg;
  caf::actor_system sys{cfg};
  mycelium::node node{sys, "driver"};
  std::shared_ptr<inbox> box = std::make_shared<inbox>();
  uint64_t next_token = 1;
  int peers_started = 0;

  /// `collect`: start the collector (without it the driver's node has no
  /// standing interest, for tests that make their own).
  explicit harness(bool collect = true) {
    if (collect)
      start_collector();
  }

  void start_collector() {
    auto c = node.start(
      [b = box](caf::actor_system& s, mycelium::service_context ctx) {
        return s.spawn<collector>(std::move(ctx), b);
      },
      "collector", {}, {}, Link::where);
    REQUIRE(c);
  }

  std::string unix_path() const { return (dir.path / "peer.sock").string(); }

  /// Starts a listening peer; returns it, its TCP port and BASP port.
  struct started_peer {
    std::unique_ptr<child_process> process;
    uint16_t port;
    uint16_t basp;
  };

  started_peer start_peer(std::vector<std::string> extra = {}, uint16_t port = 0) {
    std::vector<std::string> argv{MYCELIUM_LINK_PEER, "--kind", mt::to_string(Link::kind),
                                  "--listen",
                                  Link::kind == mt::link_kind::tcp ? "127.0.0.1"
                                                                   : unix_path(),
                                  "--port", std::to_string(port),
                                  "--placement", mycelium::to_string(Link::where)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto log = (dir.path / ("peer" + std::to_string(++peers_started) + ".log")).string();
    auto p = std::make_unique<child_process>(argv, log);
    auto line = p->read_line(20s);
    INFO("peer stderr: " << p->stderr_text());
    REQUIRE(line.rfind("ready port=", 0) == 0);
    auto port_out = static_cast<uint16_t>(std::stoi(line.substr(11)));
    auto basp_at = line.find("basp=");
    REQUIRE(basp_at != std::string::npos);
    auto basp = static_cast<uint16_t>(std::stoi(line.substr(basp_at + 5)));
    return {std::move(p), port_out, basp};
  }

  mt::link_config link_to(uint16_t port) const {
    mt::link_config c;
    c.name = "conformance";
    c.kind = Link::kind;
    c.role = mt::link_role::connect;
    c.address = Link::kind == mt::link_kind::tcp ? "127.0.0.1" : unix_path();
    c.port = port;
    return c;
  }

  mt::link connect(const mt::link_config& c) {
    auto l = mt::link::start(node, lt::descriptor(), c);
    REQUIRE(l);
    return *l;
  }

  /// Asks the peer for its counters; everything published before arrived
  /// when the answer is here (one link keeps order). Waits for the send
  /// queue to drain first, so that no overflow policy refuses the request.
  lt::report report(const mt::link& l) {
    REQUIRE(l.await_peer_interest(lt::report_request::type_id, 10s));
    REQUIRE(l.await([](const mt::link_stats& s) { return s.queued == 0; }, 30s));
    auto token = next_token++;
    REQUIRE(node.publish(lt::report_request{token}) == publish_status::ok);
    REQUIRE(box->wait([&] { return box->reports.count(token) > 0; }));
    std::lock_guard<std::mutex> guard{box->mtx};
    return box->reports[token];
  }

  ~harness() {
    node.stop();
    // Peers run under the same sanitizer as the test; their reports go to
    // their logs and must fail the test too.
    for (auto& entry : fs::directory_iterator(dir.path))
      if (entry.path().extension() == ".log") {
        std::ifstream in{entry.path()};
        std::stringstream text;
        text << in.rdbuf();
        CHECK_MESSAGE(text.str().find("Sanitizer") == std::string::npos,
                      entry.path().filename().string() << ": " << text.str());
      }
  }
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Waits until the peer's stderr contains `needle`.
bool await_stderr(child_process& p, const std::string& needle,
                  std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (contains(p.stderr_text(), needle))
      return true;
    p.read_line(10ms); // waits on the pipe, not a sleep
  }
  return false;
}

} // namespace

TEST_CASE_TEMPLATE_DEFINE("links deliver in order, both ways, complete",
                          Link, delivers_in_order) {
  harness<Link> h;
  auto [peer, port, basp_unused] = h.start_peer();
  auto c = h.link_to(port);
  // Policy block: a publisher waits for room. On a loaded machine (or under
  // a sanitizer) the peer may stall longer than the default 100 ms, which
  // would refuse a message; this case is about order, not overflow.
  c.block_timeout = 10s;
  auto l = h.connect(c);
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::data::type_id, 10s));
  constexpr uint64_t n = 100000;
  for (uint64_t i = 1; i <= n; ++i)
    REQUIRE(h.node.publish(mycelium::conformance::make_data(i, 2048))
            == publish_status::ok);
  auto rep = h.report(l);
  CHECK(rep.received == n);
  CHECK(rep.order_errors == 0);
  CHECK(rep.checksum_errors == 0);
  CHECK(rep.last_seq == n);
  // The driver's own collector saw its local copies: reset, then the
  // reverse direction.
  REQUIRE(h.box->wait([&] { return h.box->data.received == n; }));
  {
    std::lock_guard<std::mutex> guard{h.box->mtx};
    h.box->data = {};
  }
  h.node.publish(lt::command{"send 50000 2048"});
  bool all = h.box->wait([&] { return h.box->data.received == 50000; }, 60s);
  if (!all) {
    std::lock_guard<std::mutex> guard{h.box->mtx};
    auto st = l.stats();
    INFO("received " << h.box->data.received << " of 50000; link frames_received "
                     << st.frames_received << ", bytes_received " << st.bytes_received
                     << ", state " << std::string{mt::to_string(st.state)});
    REQUIRE(all);
  }
  std::lock_guard<std::mutex> guard{h.box->mtx};
  CHECK(h.box->data.order_errors == 0);
  CHECK(h.box->data.checksum_errors == 0);
  // The bus counts what the link took from it as delivered, like a service.
  auto topic = h.node.bus().topic(lt::data::type_id);
  CHECK(topic.enqueued == 2 * n + 50000); // local + link, then the replies
  CHECK(topic.delivered == topic.enqueued);
  CHECK(topic.dropped == 0);
  auto s = l.stats();
  CHECK(s.frames_received >= 50000);
  CHECK(s.bad_frames == 0);
  CHECK(s.dropped_overflow + s.back_pressured + s.dropped_link_down == 0);
  // A clean stop says goodbye: the link goes down without a "lost" peer.
  peer->close_stdin();
  CHECK(peer->wait_exit(10s) == 0);
  REQUIRE(l.await([](const mt::link_stats& st) { return st.disconnects == 1; }, 10s));
  CHECK(l.stats().goodbyes == 1);
}
TEST_CASE_TEMPLATE_APPLY(delivers_in_order, every_link);

TEST_CASE_TEMPLATE_DEFINE("the I/O loop writes a burst with one system call and polls the "
                          "socket itself",
                          Link, loop_socket_io) {
  harness<Link> h;
  auto b = h.node.start(
    [](caf::actor_system& s, mycelium::service_context ctx) {
      return s.spawn<burster>(std::move(ctx));
    },
    "burster", {}, {}, mycelium::placement::loop);
  REQUIRE(b);
  auto [peer, port, basp_unused] = h.start_peer();
  auto c = h.link_to(port);
  // The loop never sleeps: what arrives is read by its poller, except when
  // the socket poll of one turn in 32 (epoll, for the other sockets) comes
  // first.
  c.wait = mt::wait_mode::busy_poll;
  // No heartbeat of ours in the counted window, however slow the machine.
  c.heartbeat_interval = 5s;
  c.peer_timeout = 20s;
  auto l = h.connect(c);
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::data::type_id, 10s));
  REQUIRE(l.await_peer_interest(lt::command::type_id, 10s));
  // A loop service's 200 publishes reach the link's broker in one turn of
  // the loop (one resume handles up to 256): the loop writes them with one
  // send(), or a rest through the scribe if the kernel took only part.
  auto before = l.stats();
  REQUIRE(h.node.publish(lt::command{"burst 200"}) == publish_status::ok);
  REQUIRE(h.box->wait([&] { return h.box->data.received == 200; }));
  REQUIRE(l.await([&](const mt::link_stats& s) { return s.frames_sent - before.frames_sent == 201; },
                  10s)); // the command, then the data
  auto rep = h.report(l);
  CHECK(rep.received == 200);
  CHECK(rep.order_errors == 0);
  auto after = l.stats();
  auto writes = (after.socket_writes + after.scribe_writes)
                - (before.socket_writes + before.scribe_writes);
  INFO("socket writes " << after.socket_writes - before.socket_writes << ", scribe writes "
                        << after.scribe_writes - before.scribe_writes);
  // The command's frame, the burst (2 if the kernel took only part), the
  // report request: 3 to 4, with room for a split write or two.
  CHECK(writes <= 6);
  CHECK(after.socket_writes > before.socket_writes);
  // What the peer sends is read by the poller, except when it lands while
  // the loop polls epoll (one turn in 32, or every turn while a scribe holds
  // bytes): then CAF's scribe reads it, all of it if it came in one piece
  // (1,000 small frames fit the socket buffer at once). So one stream is
  // not enough to see the poller: 20 bursts, each sent after the last one
  // arrived, are 20 independent chances, and at least one must be polled.
  constexpr int bursts = 20;
  for (int i = 0; i < bursts; ++i) {
    {
      std::lock_guard<std::mutex> guard{h.box->mtx};
      h.box->data = {};
    }
    h.node.publish(lt::command{"send 50 64"});
    REQUIRE(h.box->wait([&] { return h.box->data.received == 50; }));
    std::lock_guard<std::mutex> guard{h.box->mtx};
    CHECK(h.box->data.order_errors == 0);
  }
  auto last = l.stats();
  INFO("polled reads " << last.polled_reads - after.polled_reads << " over " << bursts
                       << " bursts");
  CHECK(last.polled_reads > after.polled_reads);
  CHECK(last.dropped_link_down + last.back_pressured + last.dropped_overflow == 0);
}
TEST_CASE_TEMPLATE_APPLY(loop_socket_io, socket_links);

TEST_CASE_TEMPLATE_DEFINE("frames from 0 bytes to max_payload cross; larger ones are refused",
                          Link, frame_sizes) {
  harness<Link> h;
  constexpr uint32_t max_payload = 256 * 1024;
  auto [peer, port, basp_unused] = h.start_peer({"--max-payload", std::to_string(max_payload)});
  auto c = h.link_to(port);
  c.max_payload = max_payload;
  auto l = h.connect(c);
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::ping::type_id, 10s));
  REQUIRE(l.await_peer_interest(lt::empty::type_id, 10s));
  // ping payload = seq (2 + 8 bytes) + bytes field (2 + 4 + n bytes).
  constexpr size_t overhead = 16;
  std::vector<size_t> sizes{0, 1, 7, 8, 9, 63, 64, 65, 4095, 4096, 65535, 65536,
                            max_payload - overhead - 1, max_payload - overhead};
  h.node.publish(lt::empty{});
  for (size_t i = 0; i < sizes.size(); ++i)
    h.node.publish(lt::ping{i, mycelium::conformance::make_payload(i, sizes[i])});

  REQUIRE(h.box->wait([&] { return h.box->pongs.size() == sizes.size(); }));
  {
    std::lock_guard<std::mutex> guard{h.box->mtx};
    for (size_t i = 0; i < sizes.size(); ++i) {
      CHECK(h.box->pongs[i].seq == i);
      CHECK(h.box->pongs[i].payload == mycelium::conformance::make_payload(i, sizes[i]));
    }
  }
  CHECK(h.report(l).empties == 1);
  // One byte over: refused with a counter and an error naming the type.
  h.node.publish(lt::ping{999, std::vector<uint8_t>(max_payload - overhead + 1)});
  REQUIRE(l.await([](const mt::link_stats& s) { return s.frames_too_large == 1; }, 10s));
  CHECK(contains(l.stats().last_error, "'ping'"));
  CHECK(contains(l.stats().last_error, "max_payload"));
  // The link is not wedged.
  h.node.publish(lt::ping{1000, {}});
  REQUIRE(h.box->wait([&] { return h.box->pongs.size() == sizes.size() + 1; }));
  std::lock_guard<std::mutex> guard{h.box->mtx};
  CHECK(h.box->pongs.back().seq == 1000);
}
TEST_CASE_TEMPLATE_APPLY(frame_sizes, every_link);

TEST_CASE_TEMPLATE_DEFINE("interest propagates and nothing echoes back", Link, interest) {
  harness<Link> h;
  auto [peer, port, basp_unused] = h.start_peer();
  auto l = h.connect(h.link_to(port));
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::command::type_id, 10s));
  // Nobody over there wants probes: they do not cross.
  auto sent_before = l.stats().frames_sent;
  for (uint64_t i = 0; i < 10; ++i)
    CHECK(h.node.publish(lt::probe{i}) == publish_status::no_subscriber);
  CHECK(l.stats().frames_sent == sent_before);
  // Now the peer subscribes, and only then they cross.
  h.node.publish(lt::command{"subscribe probe"});
  REQUIRE(l.await_peer_interest(lt::probe::type_id, 10s));
  for (uint64_t i = 0; i < 10; ++i)
    CHECK(h.node.publish(lt::probe{i}) == publish_status::ok);
  CHECK(h.report(l).probes == 10);
  h.node.publish(lt::command{"unsubscribe probe"});
  REQUIRE(l.await(
    [](const mt::link_stats& s) {
      return std::find(s.peer_interest.begin(), s.peer_interest.end(),
                       lt::probe::type_id)
             == s.peer_interest.end();
    },
    10s));
  CHECK(h.node.publish(lt::probe{11}) == publish_status::no_subscriber);
  CHECK(h.report(l).probes == 10);
  // Both sides publish and subscribe chat: each side sees its own chats
  // once (locally) and the other side's once; none come back.
  REQUIRE(l.await_peer_interest(lt::chat::type_id, 10s));
  for (uint64_t i = 1; i <= 10; ++i)
    h.node.publish(lt::chat{"driver", i});
  h.node.publish(lt::command{"chat 5"});
  REQUIRE(h.box->wait([&] { return h.box->chats["peer"] == 5; }));
  auto rep = h.report(l);
  CHECK(rep.chats == 15);
  std::lock_guard<std::mutex> guard{h.box->mtx};
  CHECK(h.box->chats["driver"] == 10);
  CHECK(h.box->chats["peer"] == 5);
}
TEST_CASE_TEMPLATE_APPLY(interest, every_link);

TEST_CASE_TEMPLATE_DEFINE("a subscription reaches the peer before what is published "
                          "right after it",
                          Link, interest_then_data) {
  harness<Link> h{false};
  auto [peer, port, basp_unused] = h.start_peer();
  auto l = h.connect(h.link_to(port));
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::ping::type_id, 10s));
  REQUIRE(l.await_peer_interest(lt::report_request::type_id, 10s));
  const uint64_t cycles = 200;
  auto box = h.box;
  auto r = h.node.start(
    [box, cycles](caf::actor_system& s, mycelium::service_context ctx) {
      return s.spawn<resubscriber>(std::move(ctx), box, cycles);
    },
    "resubscriber", {}, {}, Link::where);
  REQUIRE(r);
  // A lost pong stalls the cycle: the wait times out with the count so far.
  bool done = box->wait([&] { return box->pongs.size() >= cycles; }, 30s);
  std::lock_guard<std::mutex> guard{box->mtx};
  INFO("pongs received: " << box->pongs.size() << " of " << cycles
                          << "; the link dropped " << l.stats().dropped_link_down);
  REQUIRE(done);
  for (uint64_t i = 0; i < cycles; ++i) {
    INFO("pong " << i);
    REQUIRE(box->pongs[i].seq == i + 1); // seq 0: a publish was refused
  }
}
TEST_CASE_TEMPLATE_APPLY(interest_then_data, every_link);

TEST_CASE_TEMPLATE("shm: interest that finds the ring full waits in order for room", Link,
                   shm_pool_link, shm_loop_link) {
  harness<Link> h{false};
  auto [peer, port, basp_unused] = h.start_peer({"--peer-timeout-ms", "60000"});
  auto c = h.link_to(port);
  c.overflow = mycelium::overflow_policy::drop_newest; // full: refused at once
  c.peer_timeout = 60000ms; // the stopped peer must not count as lost here
  auto l = h.connect(c);
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::data::type_id, 10s));
  peer->kill(SIGSTOP);
  uint64_t admitted = 0;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline
         && h.node.publish(mycelium::conformance::make_data(admitted + 1, 1024))
              == publish_status::ok)
    ++admitted;
  REQUIRE(admitted > 0);
  // Then frames without payload, the smallest there are, until not even one
  // fits: an interest frame (4 payload bytes) cannot fit either.
  uint64_t empties = 0;
  while (std::chrono::steady_clock::now() < deadline
         && h.node.publish(lt::empty{}) == publish_status::ok)
    ++empties;
  REQUIRE(h.node.publish(lt::command{"chat 5"}) == publish_status::back_pressured);
  // The ring is full: the collector's subscriptions (report, chat, ...) are
  // queued, not lost, and go out before the next data frame.
  h.start_collector();
  peer->kill(SIGCONT);
  auto rep = h.report(l); // the report comes back only if our interest arrived
  CHECK(rep.received == admitted);
  CHECK(rep.order_errors == 0);
  CHECK(rep.empties == empties);
  CHECK(l.stats().dropped_overflow == 3); // the data, the empty and the command that did not fit
  h.node.publish(lt::command{"chat 5"});
  CHECK(h.box->wait([&] { return h.box->chats["peer"] == 5; }));
}

TEST_CASE_TEMPLATE_DEFINE("a schema digest mismatch is refused with the reason on both ends",
                          Link, digest_mismatch) {
  harness<Link> h;
  auto [peer, port, basp_unused] = h.start_peer({"--schema", "other"});
  auto l = h.connect(h.link_to(port));
  REQUIRE(l.await(
    [](const mt::link_stats& s) {
      return s.refusals_sent + s.refusals_received >= 1
             && s.last_error.find("digest mismatch") != std::string::npos;
    },
    10s));
  auto s = l.stats();
  CHECK(s.state != mt::link_state::up);
  CHECK(s.connects == 0);
  CHECK(contains(s.last_error, "bdb45c18b8a430ff890e5ec90f2f1a8acff5bfd695fc9ab1dd8d5c9fba1e3e84"));
  CHECK(contains(s.last_error, "fadb76ff4cc18ba9cd386c6089744f4cbeda03796a3c70f3bece2e8b5e6e28ee"));
  CHECK(contains(s.last_error, "data (id 3)"));
  CHECK(await_stderr(*peer, "schema digest mismatch"));
  CHECK(contains(peer->stderr_text(), "data (id 3)"));
}
TEST_CASE_TEMPLATE_APPLY(digest_mismatch, every_link);

TEST_CASE_TEMPLATE_DEFINE("a peer without the shared secret is refused",
                          Link, shared_secret) {
  harness<Link> h;
  SUBCASE("no proof") {
    auto [peer, port, basp_unused] = h.start_peer();
    auto c = h.link_to(port);
    c.secret = "s3cret";
    auto l = h.connect(c);
    REQUIRE(l.await(
      [](const mt::link_stats& s) {
        return s.last_error.find("no authentication proof") != std::string::npos;
      },
      10s));
    CHECK(l.stats().connects == 0);
    CHECK(l.stats().refusals_sent >= 1);
  }
  SUBCASE("different secrets") {
    auto [peer, port, basp_unused] = h.start_peer({"--secret", "other"});
    auto c = h.link_to(port);
    c.secret = "s3cret";
    auto l = h.connect(c);
    REQUIRE(l.await(
      [](const mt::link_stats& s) {
        return s.last_error.find("different secrets") != std::string::npos;
      },
      10s));
    CHECK(l.stats().connects == 0);
    CHECK(await_stderr(*peer, "auth_failed"));
  }
  SUBCASE("same secret") {
    auto [peer, port, basp_unused] = h.start_peer({"--secret", "s3cret"});
    auto c = h.link_to(port);
    c.secret = "s3cret";
    auto l = h.connect(c);
    REQUIRE(l.await_up(10s));
    REQUIRE(l.await_peer_interest(lt::ping::type_id, 10s));
    h.node.publish(lt::ping{7, {1, 2, 3}});
    REQUIRE(h.box->wait([&] { return h.box->pongs.size() == 1; }));
  }
}
TEST_CASE_TEMPLATE_APPLY(shared_secret, every_link);

TEST_CASE_TEMPLATE_DEFINE("a crashed or hung peer is detected and the link reconnects",
                          Link, dead_peer) {
  harness<Link> h;
  auto [peer, port, basp_unused] = h.start_peer({"--heartbeat-ms", "50", "--peer-timeout-ms", "400"});
  auto c = h.link_to(port);
  c.heartbeat_interval = 50ms;
  c.peer_timeout = 400ms;
  c.reconnect_max = 200ms;
  auto l = h.connect(c);
  REQUIRE(l.await_up(10s));
  auto is_down = [](const mt::link_stats& s) { return s.state == mt::link_state::down; };
  auto is_up = [](const mt::link_stats& s) { return s.state == mt::link_state::up; };
  // Hung (half-open): only the missing heartbeats tell.
  peer->kill(SIGSTOP);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(l.await(is_down, 5s));
  auto detected = std::chrono::steady_clock::now() - t0;
  CHECK(detected < 400ms + 200ms);
  CHECK(contains(l.stats().last_error, "no frame from"));
  // Killed: the kernel closes its sockets; a new peer takes over the
  // address (a stale Unix socket file is replaced).
  peer->kill(SIGKILL);
  CHECK(peer->wait_exit(5s) == 128 + SIGKILL);
  auto [peer2, port2, basp2_unused] = h.start_peer({"--heartbeat-ms", "50", "--peer-timeout-ms", "400"},
                                     port);
  CHECK(port2 == port);
  REQUIRE(l.await(is_up, 10s));
  CHECK(l.stats().connects == 2);
  REQUIRE(l.await_peer_interest(lt::ping::type_id, 10s));
  h.node.publish(lt::ping{1, {}});
  REQUIRE(h.box->wait([&] { return h.box->pongs.size() == 1; }));
  // kill -9 mid-stream: noticed at once (connection reset), well within 100 ms
  // on a local link.
  std::atomic<bool> streaming{true};
  std::thread publisher{[&] {
    for (uint64_t i = 1; streaming.load(); ++i)
      h.node.publish(mycelium::conformance::make_data(i, 512));
  }};
  REQUIRE(l.await([](const mt::link_stats& s) { return s.frames_sent > 1000; }, 10s));
  peer2->kill(SIGKILL);
  // The clock starts once the peer has exited and the kernel has closed its
  // sockets: what is checked is the link's own reaction.
  CHECK(peer2->wait_exit(5s) == 128 + SIGKILL);
  t0 = std::chrono::steady_clock::now();
  REQUIRE(l.await(is_down, 5s));
  detected = std::chrono::steady_clock::now() - t0;
  streaming = false;
  publisher.join();
  auto detected_ms = std::chrono::duration_cast<std::chrono::milliseconds>(detected).count();
  INFO("kill -9 noticed after " << detected_ms << " ms");
  CHECK(detected < 100ms);
  CHECK(l.stats().disconnects == 2);
  CHECK(l.stats().goodbyes == 0); // crashes are not clean stops
  // Services saw it all on the bus: up, down (hung), up, down (killed).
  REQUIRE(h.box->wait([&] { return h.box->events.size() == 4; }, 10s));
  std::lock_guard<std::mutex> guard{h.box->mtx};
  auto& ev = h.box->events;
  CHECK(ev[0].up);
  CHECK_FALSE(ev[1].up);
  CHECK(ev[2].up);
  CHECK_FALSE(ev[3].up);
  CHECK(ev[3].link == "conformance");
  CHECK(ev[3].kind == mt::to_string(Link::kind));
  CHECK(ev[3].reason == static_cast<uint8_t>(mycelium::errc::peer_lost));
  CHECK(contains(ev[3].peer, "node 'peer'"));
  CHECK_FALSE(ev[3].text.empty());
}
TEST_CASE_TEMPLATE_APPLY(dead_peer, every_link);

TEST_CASE_TEMPLATE_DEFINE("each overflow policy behaves as configured and counts exactly",
                          Link, overflow_policies) {
  harness<Link> h;
  auto [peer, port, basp_unused] = h.start_peer({"--peer-timeout-ms", "60000"});
  auto c = h.link_to(port);
  c.send_queue = 256;
  c.block_timeout = 50ms;
  c.peer_timeout = 60000ms; // the stopped peer must not count as lost here
  std::string policy;
  SUBCASE("block") { policy = "block"; }
  SUBCASE("drop_newest") { policy = "drop_newest"; }
  SUBCASE("disconnect") { policy = "disconnect"; }
  REQUIRE(mycelium::parse_overflow_policy(policy, c.overflow) == caf::none);
  auto l = h.connect(c);
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::data::type_id, 10s));
  peer->kill(SIGSTOP); // a slow (here: frozen) consumer
  uint64_t admitted = 0;
  uint64_t refused = 0;
  std::chrono::steady_clock::duration refused_after{};
  // Fill the kernel buffers and then the send queue; ids are given only to
  // admitted messages, so the peer must see 1..admitted without gaps.
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (refused == 0 && std::chrono::steady_clock::now() < deadline) {
    auto t = std::chrono::steady_clock::now();
    auto st = h.node.publish(mycelium::conformance::make_data(admitted + 1, 1024));
    if (st == publish_status::ok) {
      ++admitted;
    } else {
      REQUIRE(st == publish_status::back_pressured);
      refused_after = std::chrono::steady_clock::now() - t;
      ++refused;
    }
  }
  REQUIRE(refused == 1);
  if (policy == "block") {
    CHECK(refused_after >= 45ms);
    CHECK(l.stats().back_pressured == 1);
    CHECK(l.stats().dropped_overflow == 0);
  } else {
    CHECK(refused_after < 45ms);
    for (int i = 0; i < 99; ++i)
      if (h.node.publish(mycelium::conformance::make_data(admitted + 1, 1024))
          == publish_status::back_pressured)
        ++refused;
      else
        ++admitted;
    CHECK(l.stats().dropped_overflow == refused);
    CHECK(l.stats().back_pressured == 0);
  }
  if (policy == "disconnect") {
    REQUIRE(l.await([](const mt::link_stats& s) { return s.overflow_disconnects == 1; },
                    10s));
    REQUIRE(l.await([](const mt::link_stats& s) { return s.disconnects == 1; }, 10s));
  }
  peer->kill(SIGCONT);
  if (policy == "disconnect")
    REQUIRE(l.await([](const mt::link_stats& s) { return s.connects == 2; }, 20s));
  auto rep = h.report(l);
  CHECK(rep.order_errors == 0);
  CHECK(rep.checksum_errors == 0);
  CHECK(rep.received == rep.last_seq);
  auto s = l.stats();
  // The collector takes a copy of every publish, admitted or refused; the
  // topic's other copies are what the link took. Under `disconnect` that is
  // fewer than `admitted`: a publish after the link left the bus (it may do
  // so while the loop above still runs) reaches only the collector.
  auto topic = h.node.bus().topic(lt::data::type_id);
  REQUIRE(topic.enqueued >= topic.published);
  auto to_link = topic.enqueued - topic.published;
  INFO("admitted " << admitted << ", taken by the link " << to_link << ", received "
                   << rep.received << ", dropped_link_down " << s.dropped_link_down);
  if (policy == "disconnect") {
    // What the link took and did not deliver was counted when the connection
    // was dropped (a frame the kernel still delivered may be counted too: at
    // most once).
    CHECK(to_link <= admitted);
    CHECK(rep.received <= to_link);
    CHECK(to_link - rep.received <= s.dropped_link_down);
  } else {
    CHECK(to_link == admitted);
    CHECK(rep.received == admitted);
    CHECK(s.dropped_link_down == 0);
  }
  CHECK(topic.refused == refused);
}
TEST_CASE_TEMPLATE_APPLY(overflow_policies, every_link);

TEST_CASE_TEMPLATE("unix socket files are owner-only and a live one is never stolen", Link,
                   unix_pool_link, unix_loop_link) {
  harness<Link> h;
  auto [peer, port, basp_unused] = h.start_peer();
  struct stat st;
  REQUIRE(::stat(h.unix_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(S_ISSOCK(st.st_mode));
  // A second listener on the same path must refuse, not steal it.
  child_process second{{MYCELIUM_LINK_PEER, "--kind", "unix", "--listen", h.unix_path(),
                        "--placement", mycelium::to_string(Link::where)},
                       (h.dir.path / "second.log").string()};
  CHECK(second.wait_exit(20s) == 2);
  CHECK(contains(second.stderr_text(), "live process"));
  // The first still serves.
  auto l = h.connect(h.link_to(0));
  REQUIRE(l.await_up(10s));
}

TEST_CASE_TEMPLATE("CAF remote actor systems: a service spawned by name on a remote node "
                   "joins that node's bus",
                   Link, tcp_pool_link, tcp_loop_link) {
  harness<Link> h;
  auto [peer, port, basp] = h.start_peer({"--services", "none", "--expose", "0"});
  REQUIRE(basp != 0);
  auto bad = mt::remote_spawn(h.sys, "127.0.0.1", basp, "linktest.nope", "", 10s);
  REQUIRE(!bad);
  CHECK(contains(mycelium::render(bad.error()), "linktest.nope"));
  CHECK(contains(mycelium::render(bad.error()), "unknown_service"));
  caf::settings params;
  params["offset"] = int64_t{1000}; // the pong tells that it arrived
  auto echo = mt::remote_spawn(h.sys, "127.0.0.1", basp, "linktest.echo", "echo1", 10s,
                               Link::where, params);
  REQUIRE(echo);
  CHECK(echo->node() != h.sys.node()); // a proxy of an actor over there
  // Wired into the remote bus: it answers pings that reach that bus over a
  // link (the peer started no service of its own).
  auto l = h.connect(h.link_to(port));
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::ping::type_id, 10s));
  h.node.publish(lt::ping{42, {4, 2}});
  REQUIRE(h.box->wait([&] { return h.box->pongs.size() == 1; }));
  std::lock_guard<std::mutex> guard{h.box->mtx};
  CHECK(h.box->pongs[0].seq == 1042);
  auto nobody = mt::remote_spawn(h.sys, "127.0.0.1", 1, "linktest.echo", "", 5s);
  REQUIRE(!nobody);
  CHECK(contains(mycelium::render(nobody.error()), "no exposed Mycelium node at 127.0.0.1:1"));
}

TEST_CASE_TEMPLATE_DEFINE("a connecting link retries with exponential backoff until the peer appears",
                          Link, reconnect_backoff) {
  harness<Link> h;
  // Reserve a free TCP port by listening once, then free it: nobody listens.
  uint16_t port = 0;
  {
    auto [probe, p, basp_unused] = h.start_peer();
    port = p;
  }
  auto c = h.link_to(port);
  c.reconnect_min = 20ms;
  c.reconnect_max = 160ms;
  auto t0 = std::chrono::steady_clock::now();
  auto l = h.connect(c);
  // Attempt k waits 20 * 2^(k-1) ms (capped at 160) plus up to 50 % jitter:
  // the sixth failure cannot come before 20+40+80+160+160 = 460 ms.
  REQUIRE(l.await([](const mt::link_stats& s) { return s.connect_failures >= 6; }, 20s));
  CHECK(std::chrono::steady_clock::now() - t0 >= 460ms);
  CHECK(l.stats().state == mt::link_state::down);
  CHECK_FALSE(l.stats().last_error.empty());
  // The peer appears: the link connects on its next attempt (<= 240 ms).
  auto [peer, port2, basp_unused2] = h.start_peer({}, port);
  REQUIRE(port2 == port);
  REQUIRE(l.await_up(10s));
}
TEST_CASE_TEMPLATE_APPLY(reconnect_backoff, every_link);

TEST_CASE("link configuration errors name the field") {
  mt::link_config c;
  c.port = 0;
  auto err = c.validate();
  REQUIRE(err);
  CHECK(contains(mycelium::render(err), "port"));
  c.port = 1;
  c.peer_timeout = 10ms;
  c.heartbeat_interval = 100ms;
  CHECK(contains(mycelium::render(c.validate()), "peer_timeout"));
  mycelium::overflow_policy p;
  CHECK(contains(mycelium::render(mycelium::parse_overflow_policy("fast", p)),
                 "block, drop_newest or disconnect"));
  mt::link_kind k;
  CHECK(contains(mycelium::render(mt::parse_link_kind("udp", k)), "unix, tcp or shm"));
  c.peer_timeout = 1000ms;
  c.name = std::string(251, 'x'); // the hello limits names to 255 bytes
  CHECK(contains(mycelium::render(c.validate()), "name"));
  system_config cfg;
  caf::actor_system sys{cfg};
  mycelium::node n{sys, std::string(256, 'n')};
  c.name = "ok";
  auto l = mt::link::start(n, lt::descriptor(), c);
  REQUIRE(!l);
  CHECK(contains(mycelium::render(l.error()), "at most 255"));
}

// -- shared memory only ------------------------------------------------------------

namespace {

/// Mycelium segments in /dev/shm owned (on either side) by `pid`.
std::string segments_of(pid_t pid) {
  std::string names;
  for (auto& s : mt::shm::list_segments())
    if (s.owner_pid[0] == static_cast<uint32_t>(pid)
        || s.owner_pid[1] == static_cast<uint32_t>(pid))
      names += s.name + " (state " + std::to_string(s.state) + ", pids "
               + std::to_string(s.owner_pid[0]) + "/"
               + std::to_string(s.owner_pid[1]) + ") ";
  return names;
}

} // namespace

// On the loop only: the heaviest case (measured on a loaded 2-core machine:
// 16 s on the pool, 48 s on the loop); both would push the suite towards two
// minutes. The loop is where frames are decoded and handled on the thread
// that polls the ring (with direct calls), the newer path; the pool path of
// the same ring is run by every other shm case.
TEST_CASE_TEMPLATE("shm: 10 million messages of random sizes arrive complete and in order",
                   Link, shm_loop_link) {
  harness<Link> h;
  auto [peer, port, basp_unused] = h.start_peer();
  auto c = h.link_to(port);
  c.block_timeout = 10s; // a loaded CI machine may stall the reader a while
  auto l = h.connect(c);
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::data::type_id, 10s));
  h.box->ignore_data = true; // the peer checks; the local copies are not kept
  constexpr uint64_t n = 10'000'000;
  constexpr uint64_t window = 500'000; // bounds the peer's mailbox
  uint64_t bytes = 0;
  for (uint64_t i = 1; i <= n; ++i) {
    // Mostly 0..256 bytes; every 4096th up to 64 KiB, to wrap the ring often.
    auto d = mycelium::conformance::make_data(i, i % 4096 == 0 ? 65536 : 256);
    bytes += d.payload.size();
    REQUIRE(h.node.publish(std::move(d)) == publish_status::ok);
    if (i % window == 0 || i == n) {
      auto rep = h.report(l);
      REQUIRE(rep.received == i);
      REQUIRE(rep.order_errors == 0);
      REQUIRE(rep.checksum_errors == 0);
      REQUIRE(rep.last_seq == i);
    }
  }
  auto rep = h.report(l);
  CHECK(rep.bytes == bytes);
  auto s = l.stats();
  CHECK(s.frames_sent >= n);
  CHECK(s.dropped_overflow + s.back_pressured + s.dropped_link_down == 0);
  CHECK(s.bad_frames == 0);
}

TEST_CASE_TEMPLATE("shm: kill -9 of either side mid-stream is noticed within 100 ms and "
                   "leaves no segment",
                   Link, shm_pool_link, shm_loop_link) {
  harness<Link> h;
  std::unique_ptr<child_process> peer;
  mt::link l;
  auto is_down = [](const mt::link_stats& s) { return s.state == mt::link_state::down; };
  SUBCASE("the peer created the segment (it listens)") {
    auto started = h.start_peer();
    peer = std::move(started.process);
    l = h.connect(h.link_to(0));
  }
  SUBCASE("the peer attached to our segment (it connects)") {
    auto c = h.link_to(0);
    c.role = mt::link_role::listen;
    auto lk = mt::link::start(h.node, lt::descriptor(), c);
    REQUIRE(lk);
    l = *lk;
    peer = std::make_unique<child_process>(
      std::vector<std::string>{MYCELIUM_LINK_PEER, "--kind", "shm", "--connect",
                               h.unix_path(), "--placement",
                               mycelium::to_string(Link::where)},
      (h.dir.path / "connector.log").string());
    REQUIRE(peer->read_line(20s).rfind("ready", 0) == 0);
  }
  REQUIRE(l.await_up(10s));
  REQUIRE(l.await_peer_interest(lt::data::type_id, 10s));
  // Attached on both sides: the name is gone from /dev/shm already.
  CHECK(segments_of(::getpid()) == "");
  std::atomic<bool> streaming{true};
  std::thread publisher{[&] {
    for (uint64_t i = 1; streaming.load(); ++i)
      h.node.publish(mycelium::conformance::make_data(i, 512));
  }};
  REQUIRE(l.await([](const mt::link_stats& s) { return s.frames_sent > 10000; }, 10s));
  auto pid = peer->pid();
  peer->kill(SIGKILL);
  // As for the socket links: the clock starts once the peer has exited and
  // the kernel has closed its control socket, so what is checked is the
  // link's own reaction, not how long a loaded machine takes to end a
  // process (156 ms once, beside two CPU hogs, when the clock started at
  // the kill).
  CHECK(peer->wait_exit(5s) == 128 + SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(l.await(is_down, 5s));
  auto detected = std::chrono::steady_clock::now() - t0;
  streaming = false;
  publisher.join();
  auto detected_ms = std::chrono::duration_cast<std::chrono::milliseconds>(detected).count();
  INFO("kill -9 noticed after " << detected_ms << " ms");
  CHECK(detected < 100ms);
  CHECK(l.stats().goodbyes == 0);
  CHECK(segments_of(pid) == "");
  CHECK(segments_of(::getpid()) == "");
  // Whatever was in flight is counted, not silently lost.
  auto s = l.stats();
  CHECK(s.frames_sent > 0);
  CHECK(s.dropped_overflow == 0);
}

TEST_CASE("shm: a link without the shm multiplexer or with a ring too small is "
          "refused with what to do") {
  mt::link_config c;
  c.kind = mt::link_kind::shm;
  c.address = "/tmp/mycelium-shm-config-test.sock";
  c.ring_capacity = 1000;
  CHECK(contains(mycelium::render(c.validate()), "ring_capacity"));
  c.ring_capacity = 1 << 20; // largest payload 512 KiB - 32
  c.max_payload = 1 << 20;
  auto err = mycelium::render(c.validate());
  CHECK(contains(err, "max_payload"));
  CHECK(contains(err, "raise ring_capacity"));
  c.max_payload = 1 << 16;
  CHECK(c.validate() == caf::none);
  mt::wait_mode w;
  CHECK(contains(mycelium::render(mt::parse_wait_mode("spin", w)),
                 "busy_poll, spin_then_block or block"));
  caf::actor_system_config plain;
  plain.load<caf::io::middleman>();
  plain.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{plain};
  mycelium::node n{sys, "plain"};
  auto l = mt::link::start(n, lt::descriptor(), c);
  REQUIRE(!l);
  CHECK(contains(mycelium::render(l.error()), "load_io_loop"));
}
