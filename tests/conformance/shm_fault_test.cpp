// Fault injection on the shared-memory link: a hand-rolled peer that speaks
// the link protocol through public APIs only (link_protocol, segment,
// ring_writer) and then breaks the ring on purpose. The link under test must
// reset with an error that names the fault, never wedge, and take the next
// peer. Synchronises on link state and socket reads with timeouts.

#include <doctest/doctest.h>

#include <chrono>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "child_process.hpp"
#include "link_test.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/link_protocol.hpp"
#include "mycelium/transports/shm/segment.hpp"
#include "mycelium/transports/loop/io_loop.hpp"

using namespace std::chrono_literals;
namespace mt = mycelium::transports;
namespace lt = mycelium::linktest;
using mycelium::test_support::temp_dir;

namespace {

/// The far side of a shm link, built from the public pieces so that it can
/// write whatever it likes into the ring.
class fake_peer : public mt::link_protocol::listener {
public:
  explicit fake_peer(const std::string& path)
    : proto_(lt::descriptor(), {"fake", "link:fake", static_cast<uint32_t>(::getpid())},
             "", mycelium::wire::default_max_payload) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    proto_.start(out_);
    flush();
  }

  ~fake_peer() override {
    ::close(fd_);
  }

  /// Reads until the listener named its segment, maps it and answers.
  void attach() {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (offer_.segment.empty() && std::chrono::steady_clock::now() < deadline)
      REQUIRE(pump(100ms));
    REQUIRE_FALSE(offer_.segment.empty());
    auto s = mt::shm::segment::attach(offer_.segment, lt::descriptor().digest);
    REQUIRE(s);
    seg_ = std::move(*s);
    writer_ = seg_.writer();
    proto_.write_shm_attach({offer_.segment, "mycelium-test-no-doorbell"}, out_);
    flush();
  }

  /// Writes a data frame carrying `p` with ring sequence `seq`.
  void write_ping(uint64_t seq, const lt::ping& p) {
    std::vector<uint8_t> f;
    mycelium::encode_frame(p, seq, f);
    REQUIRE(writer_.write(f.data(), f.size()) == mt::shm::ring_status::ok);
  }

  /// Writes a record whose length no ring of this size can hold.
  void write_corrupt_record() {
    uint8_t* dst = nullptr;
    REQUIRE(writer_.reserve(32, dst) == mt::shm::ring_status::ok);
    std::memset(dst, 0, 32);
    auto* rec = reinterpret_cast<mt::shm::record_header*>(dst - sizeof(mt::shm::record_header));
    rec->length = 0xFFFFFF00u;
    writer_.commit();
  }

  /// Writes a frame whose header has a reserved field set.
  void write_bad_header(uint64_t seq) {
    std::vector<uint8_t> f;
    mycelium::encode_frame(lt::ping{seq, {}}, seq, f);
    f[mycelium::wire::frame_header::off_reserved0] = 0x5A;
    REQUIRE(writer_.write(f.data(), f.size()) == mt::shm::ring_status::ok);
  }

  /// Waits for bytes (or EOF) and feeds them to the protocol; false on EOF.
  bool pump(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
      return true;
    uint8_t buf[65536];
    auto n = ::read(fd_, buf, sizeof(buf));
    if (n <= 0)
      return false;
    proto_.consume(buf, static_cast<size_t>(n), out_, *this);
    flush();
    return true;
  }

  /// Waits until the link under test closed the connection.
  bool await_closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline)
      if (!pump(50ms))
        return true;
    return false;
  }

  // -- link_protocol::listener ---------------------------------------------------
  void on_established(const mycelium::wire::hello&) override {}
  void on_refusing(const mycelium::wire::refuse&) override {}
  void on_refused(const mycelium::wire::refuse&) override {}
  void on_interest(uint32_t, bool) override {}
  void on_data(uint32_t, caf::message) override {}
  void on_goodbye() override {}
  void on_bad_frame(mycelium::errc, const std::string&) override {}
  void on_error(mycelium::errc, const std::string&) override {}
  mycelium::errc on_shm_attach(const mycelium::wire::shm_attach& x,
                               std::string&) override {
    offer_ = x;
    return mycelium::errc::none;
  }

private:
  void flush() {
    size_t done = 0;
    while (done < out_.size()) {
      auto n = ::write(fd_, out_.data() + done, out_.size() - done);
      if (n <= 0)
        break; // the link closed on us; the test checks that
      done += static_cast<size_t>(n);
    }
    out_.clear();
  }

  int fd_ = -1;
  mt::link_protocol proto_;
  std::vector<uint8_t> out_;
  mycelium::wire::shm_attach offer_;
  mt::shm::segment seg_;
  mt::shm::ring_writer writer_;
};

struct system_config : caf::actor_system_config {
  system_config() {
    mt::load_io_loop(*this);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("shm: a sequence gap or a corrupt ring resets the link with the "
          "reason, and the next peer is served") {
  temp_dir dir{"mycelium-shm-fault-"};
  system_config cfg;
  caf::actor_system sys{cfg};
  mycelium::node node{sys, "survivor"};
  mt::link_config c;
  c.name = "faults";
  c.kind = mt::link_kind::shm;
  c.role = mt::link_role::listen;
  c.address = (dir.path / "shm.sock").string();
  c.wait = mt::wait_mode::busy_poll; // the fake peer rings no doorbell
  c.peer_timeout = 30s;                   // nor sends heartbeats
  c.ring_capacity = 1 << 16;
  c.max_payload = 1 << 14;
  auto started = mt::link::start(node, lt::descriptor(), c);
  INFO(mycelium::render(started.error()));
  REQUIRE(started);
  auto l = *started;
  auto down_with = [&](uint64_t disconnects, const std::string& text) {
    return l.await(
      [&](const mt::link_stats& s) {
        return s.disconnects == disconnects && contains(s.last_error, text);
      },
      10s);
  };
  uint64_t received = 0;
  auto up_and_clean = [&](fake_peer& p) {
    p.attach();
    REQUIRE(l.await_up(10s));
    p.write_ping(1, lt::ping{1, {1, 2, 3}});
    p.write_ping(2, lt::ping{2, {}});
    received += 2;
    REQUIRE(l.await([&](const mt::link_stats& s) { return s.frames_received == received; },
                    10s));
  };
  SUBCASE("sequence gap") {
    fake_peer p{c.address};
    up_and_clean(p);
    p.write_ping(4, lt::ping{4, {}}); // 3 is missing
    CHECK(down_with(1, "sequence gap"));
    CHECK(contains(l.stats().last_error, "expected 3, got 4"));
    CHECK(p.await_closed(10s));
  }
  SUBCASE("corrupt record header") {
    fake_peer p{c.address};
    up_and_clean(p);
    p.write_corrupt_record();
    CHECK(down_with(1, "corrupt record"));
    CHECK(p.await_closed(10s));
  }
  SUBCASE("bad frame header") {
    fake_peer p{c.address};
    up_and_clean(p);
    p.write_bad_header(3);
    CHECK(down_with(1, "bad frame header"));
    CHECK(p.await_closed(10s));
  }
  // Not wedged: the next peer is served like the first.
  fake_peer next{c.address};
  up_and_clean(next);
  CHECK(l.stats().state == mt::link_state::up);
  CHECK(l.stats().connects == 2);
  CHECK(l.stats().bad_frames == 0);
  l.stop();
  for (auto& seg : mt::shm::list_segments()) // nothing of ours is left
    CHECK(seg.owner_pid[0] != static_cast<uint32_t>(::getpid()));
}
