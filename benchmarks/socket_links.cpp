// mycelium-bench-links: Unix and TCP links between two processes, against raw
// sockets, CAF remote actors (BASP) and ZeroMQ, all measured in the same run.
//
// Every measurement uses two real processes: this program (side A, the
// driver) re-executes itself (/proc/self/exe) with the hidden option
// `--role peer` for side B, which hosts every far end at once:
//   - raw socket servers (Unix and TCP; blocking echo, busy-polling echo and a
//     throughput sink that counts length-prefixed frames),
//   - per link kind and bus wait mode (`bus`, `bus-spin`) one mycelium node
//     with a `far` service (answers `ping` with `pong`, counts `tick`
//     streams) and a listening link whose `link_config::wait` is that mode,
//   - a plain CAF actor published with `middleman().publish` (BASP, TCP only),
//   - ZeroMQ PAIR sockets on tcp:// and ipc:// that echo (if built with
//     libzmq).
// When A is done with it (also after an error) A closes the child's stdin (a
// pipe: the child exits at EOF), then kills (SIGKILL) and reaps it if it is
// still there after 2 s; SIGINT/SIGTERM in A kill it at once, and it dies
// with A in any case (PR_SET_PDEATHSIG).
//
//  1. Round-trip latency. Per link kind and payload size, every path runs a
//     closed-loop ping-pong: A sends ping{seq, payload}, B answers
//     pong{seq, payload}, A times the round trip and sends the next ping.
//       raw       plain blocking sockets (TCP_NODELAY), 16-byte header +
//                 payload written with one write(), read back in full
//       raw-spin  same, but both ends busy-poll recv(MSG_DONTWAIT) (up to
//                 1 ms, then block): the socket floor without wake-ups;
//                 only with pin=split (each spinning end needs a CPU)
//       bus       A: service publishes ping, pong handler records the RTT
//                 and publishes the next ping; B: service answers ping with
//                 pong; a mycelium link (Unix or TCP) connects the buses,
//                 `link_config::wait` = --bus-wait (default block) on both
//                 sides: held against `raw` (blocking vs blocking)
//       bus-spin  same, `link_config::wait` = --bus-spin-wait (default
//                 busy_poll; spin_then_block spins --spin-us) on both sides:
//                 held against `raw-spin` (polling vs polling); only with
//                 pin=split unless its wait mode is block
//                 Both bus paths connect a fresh link for each chunk of round
//                 trips and close it after (a connected link makes its I/O
//                 loop idle by its wait mode; the loop follows the most eager
//                 request), so no busy-polling loop runs while other paths
//                 are measured. --placement pool|loop puts the services of
//                 BOTH processes on CAF's worker pool or on the node's I/O
//                 loop (the thread that reads the socket).
//       caf       plain CAF actors over BASP (publish / remote_actor), the
//                 same mbench::ping / pong types (TCP only: BASP has no Unix
//                 transport)
//       zmq       ZeroMQ PAIR sockets, tcp://127.0.0.1 and ipc://
//     After a warm-up, the paths alternate in rounds (order rotated every
//     round; every chunk starts with --chunk-warmup untimed round trips).
//     ALL LATENCIES ARE ROUND TRIPS. Both actor systems load CAF's
//     middleman with Mycelium's I/O loop (load_io_loop; BASP runs on it too).
//  2. One-way throughput, 64-byte payloads. bus: a service publishes N
//     `tick`s as fast as the link admits (overflow policy block); B counts
//     them and publishes an `ack` once it has all N; the time runs from the
//     first publish to the ack; the link uses the `bus` path's wait mode
//     (--bus-wait). raw: A writes N length-prefixed frames
//     (batched into 64 KiB writes, and one write() per frame), B counts
//     them and answers with the count. caf (TCP): an actor sends N ticks to
//     the remote actor over BASP (no flow control), which acks the count.
//     Alternating rounds.
//
// Beside each path's figures the program reads, from /proc, the context
// switches and the on-CPU time of every thread of BOTH processes during the
// timed rounds and reports them per round trip (per message for throughput):
// where a path's extra time goes, in wake-ups and in CPU.
//
// Scenarios: each `config@pin` pair (CAF scheduler settings, CPU pinning of
// the two processes) gets its own child and its own actor systems.
// See docs/benchmarks.md ("Unix and TCP links") for how to read the output.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/format.h>

#ifdef MYCELIUM_BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

#include "bench_messages.hpp"
#include "bench_clock.hpp"
#include "bench_pingpong.hpp"
#include "bench_report.hpp"
#include "bench_sched.hpp"
#include "bench_two_process.hpp"
#include "child_process.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/transports/link.hpp"
#include "mycelium/transports/loop/io_loop.hpp"

#ifndef MYCELIUM_BENCH_RESULTS_DIR
#define MYCELIUM_BENCH_RESULTS_DIR "benchmarks/results"
#endif

extern char** environ;

namespace {

using namespace mycelium::bench; // clock, report, scheduler, process and actor helpers

namespace mb = mbench;
namespace mt = mycelium::transports;
using namespace std::chrono_literals;

#ifdef MYCELIUM_BENCH_HAVE_ZMQ
constexpr bool have_zmq = true;
#else
constexpr bool have_zmq = false;
#endif

// -- options ------------------------------------------------------------------------

struct options {
  std::vector<size_t> sizes{16, 256, 4096, 65536};
  size_t rounds = 10;
  size_t roundtrips = 100000;      // timed round trips per path, sizes <= 1 KiB
  size_t roundtrips_large = 20000; // timed round trips per path, sizes > 1 KiB
  size_t warmup = 2000;            // per path, kind and size
  size_t chunk_warmup = 200;       // per chunk (a bus path's link is fresh)
  std::vector<std::string> kinds{"unix", "tcp"};
  std::vector<std::string> paths{"raw", "raw-spin", "bus", "bus-spin", "caf", "zmq"};
  std::vector<std::string> scenarios{"default@none", "wake@none", "tuned@none",
                                     "wake@split", "wake@same"};
  size_t threads = 2;
  int64_t ws_aggressive_polls = 100000;
  int64_t ws_moderate_sleep_ns = 0;
  int64_t ws_relaxed_sleep_us = 100;
  int64_t mm_workers = -1; // -1: CAF's default
  int64_t max_throughput = -1; // scheduler.max-throughput; -1: CAF's default (unlimited)
  size_t tput_msgs = 1000000;
  size_t tput_rounds = 5;
  size_t tput_payload = 64;
  size_t tput_batch = 65536; // bytes per write() of the batched raw writer
  std::vector<std::string> tput_paths{"raw", "raw-1write", "bus", "caf"};
  size_t send_queue = 4096;
  int64_t block_timeout_ms = 100;
  std::string placement = "pool";        // where both sides' bus services run: pool | loop
  std::string bus_wait = "block";        // link_config::wait of the `bus` path (vs raw)
  std::string bus_spin_wait = "busy_poll"; // link_config::wait of `bus-spin` (vs raw-spin)
  uint32_t spin_us = 100;                // link_config::spin (spin_then_block)
  bool skip_latency = false;
  bool skip_tput = false;
  bool quick = false;
  std::string timer = "tsc";
  std::string json = MYCELIUM_BENCH_RESULTS_DIR "/links.json";
  // hidden: the peer process
  std::string role;
  std::string config = "default";
  std::string dir;
  int cpu = -1;
};

mycelium::placement placement_of(const options& opt) {
  mycelium::placement p = mycelium::placement::pool;
  if (auto err = mycelium::parse_placement(opt.placement, p))
    throw bench_error(mycelium::render(err));
  return p;
}

mt::wait_mode wait_of(const std::string& text) {
  mt::wait_mode m = mt::wait_mode::block;
  if (auto err = mt::parse_wait_mode(text, m))
    throw bench_error(mycelium::render(err));
  return m;
}

/// The two bus paths and their links' wait modes: `bus` is held against the
/// blocking raw sockets, `bus-spin` against the busy-polling ones.
enum class bus_mode { block, spin };

const char* key_of(bus_mode m) {
  return m == bus_mode::block ? "block" : "spin";
}

mt::wait_mode wait_of(const options& opt, bus_mode m) {
  return wait_of(m == bus_mode::block ? opt.bus_wait : opt.bus_spin_wait);
}

size_t roundtrips_for(const options& opt, size_t size) {
  return size <= 1024 ? opt.roundtrips : opt.roundtrips_large;
}

struct scenario {
  std::string config; // default | wake | tuned
  std::string pin;    // none | split | same
  std::string name() const { return config + "@" + pin; }
};

scenario parse_scenario(const std::string& s) {
  auto at = s.find('@');
  scenario sc{s.substr(0, at), at == std::string::npos ? "none" : s.substr(at + 1)};
  if (sc.config != "default" && sc.config != "wake" && sc.config != "tuned")
    throw bench_error("scenario '" + s + "': config must be default, wake or tuned");
  if (sc.pin != "none" && sc.pin != "split" && sc.pin != "same")
    throw bench_error("scenario '" + s + "': pin must be none, split or same");
  return sc;
}

// -- actor system configuration --------------------------------------------------------

void configure(caf::actor_system_config& cfg, const options& opt, const std::string& config) {
  mt::load_io_loop(cfg); // CAF's middleman with Mycelium's I/O loop (BASP runs on it too)
  mb::add_message_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  cfg.set("scheduler.policy", caf::atom("stealing"));
  cfg.set("scheduler.max-threads", static_cast<int64_t>(opt.threads));
  if (opt.mm_workers >= 0)
    cfg.set("middleman.workers", opt.mm_workers);
  if (opt.max_throughput > 0)
    cfg.set("scheduler.max-throughput", opt.max_throughput);
  if (config == "tuned") {
    // Spin instead of sleeping 50 us between polls (see inprocess_latency.cpp).
    cfg.set("work-stealing.aggressive-poll-attempts", opt.ws_aggressive_polls);
    cfg.set("work-stealing.moderate-sleep-duration", caf::timespan{opt.ws_moderate_sleep_ns});
    cfg.set("work-stealing.relaxed-sleep-duration",
            caf::timespan{opt.ws_relaxed_sleep_us * 1000});
  } else if (config == "wake") {
    // Skip the moderate phase (polls with 50 us sleeps that new work does not
    // interrupt): after the aggressive polls a worker waits on its condition
    // variable, which external_enqueue notifies.
    cfg.set("work-stealing.moderate-poll-attempts", int64_t{0});
  }
}

std::string sched_text(const sched_info& s) {
  return fmt::format("scheduler.policy={} max-threads={} (workers={}) max-throughput={} "
                     "middleman.workers={} "
                     "work-stealing: aggressive-poll-attempts={} moderate-poll-attempts={} "
                     "moderate-sleep-duration={} ns relaxed-sleep-duration={} ns",
                     s.policy, s.max_threads, s.workers,
                     s.max_throughput < 0 ? std::string{"unlimited"}
                                          : std::to_string(s.max_throughput),
                     s.mm_workers,
                     s.aggressive_poll_attempts, s.moderate_poll_attempts, s.moderate_sleep_ns,
                     s.relaxed_sleep_ns);
}

// -- plain sockets --------------------------------------------------------------------------

[[noreturn]] void sys_fail(const std::string& what) {
  throw bench_error(what + ": " + std::strerror(errno));
}

void write_all(int fd, const void* data, size_t n) {
  auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    auto k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      sys_fail("send");
    }
    p += k;
    n -= static_cast<size_t>(k);
  }
}

/// Reads exactly `n` bytes; false on EOF. `spin`: busy-poll with
/// MSG_DONTWAIT for up to 1 ms per wait, then block in poll().
bool read_full(int fd, void* data, size_t n, bool spin) {
  auto* p = static_cast<uint8_t*>(data);
  int64_t spin_start = 0;
  while (n > 0) {
    auto k = ::recv(fd, p, n, spin ? MSG_DONTWAIT : 0);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
      spin_start = 0;
      continue;
    }
    if (k == 0)
      return false;
    if (errno == EINTR)
      continue;
    if (spin && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto t = now_ns();
      if (spin_start == 0)
        spin_start = t;
      if (t - spin_start > 1000000) { // 1 ms without data: block
        pollfd pf{fd, POLLIN, 0};
        ::poll(&pf, 1, -1);
        spin_start = 0;
      }
      continue;
    }
    sys_fail("recv");
  }
  return true;
}

void set_nodelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
    sys_fail("setsockopt(TCP_NODELAY)");
}

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path))
    throw bench_error("socket path too long: " + path);
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

int listen_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    sys_fail("socket(AF_UNIX)");
  auto a = unix_addr(path);
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 16) != 0)
    sys_fail("bind/listen " + path);
  return fd;
}

int listen_tcp(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    sys_fail("socket(AF_INET)");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 16) != 0)
    sys_fail("bind/listen tcp 127.0.0.1");
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    sys_fail("socket(AF_UNIX)");
  auto a = unix_addr(path);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    sys_fail("connect unix:" + path);
  return fd;
}

int connect_tcp(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    sys_fail("socket(AF_INET)");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    sys_fail(fmt::format("connect tcp:127.0.0.1:{}", port));
  set_nodelay(fd);
  return fd;
}

/// RAII file descriptor.
struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int x) : fd(x) {}
  fd_guard(fd_guard&& o) noexcept : fd(o.fd) { o.fd = -1; }
  fd_guard& operator=(fd_guard&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// Raw ping-pong header: sequence number and payload length.
struct raw_header {
  uint64_t seq;
  uint32_t len;
  uint32_t pad;
};
static_assert(sizeof(raw_header) == 16);

// Connection modes of the raw servers (first byte a client sends).
constexpr char mode_echo = 'E';
constexpr char mode_echo_spin = 'S';
constexpr char mode_sink = 'T';

// -- peer (side B) ------------------------------------------------------------------------------

/// B's raw server for one connection.
void raw_serve(int fd) {
  fd_guard g{fd};
  try {
    char mode = 0;
    if (!read_full(fd, &mode, 1, false))
      return;
    if (mode == mode_echo || mode == mode_echo_spin) {
      bool spin = mode == mode_echo_spin;
      std::vector<uint8_t> buf(sizeof(raw_header) + 65536);
      for (;;) {
        raw_header h{};
        if (!read_full(fd, &h, sizeof(h), spin))
          return;
        if (h.len > 65536)
          return;
        std::memcpy(buf.data(), &h, sizeof(h));
        if (!read_full(fd, buf.data() + sizeof(h), h.len, spin))
          return;
        // Tell the driver where the echo ran (same CPU as the driver or not).
        h.pad = static_cast<uint32_t>(::sched_getcpu());
        std::memcpy(buf.data(), &h, sizeof(h));
        write_all(fd, buf.data(), sizeof(h) + h.len);
      }
    }
    if (mode == mode_sink) {
      // Streams of [u32 length][payload] frames; answers each stream of n
      // frames with the count it parsed.
      std::vector<uint8_t> buf(1 << 18);
      volatile uint8_t touch = 0; // reads one payload byte per frame, like the bus side
      for (;;) {
        uint64_t n = 0;
        if (!read_full(fd, &n, sizeof(n), false) || n == 0)
          return;
        uint64_t count = 0;
        size_t have = 0, pos = 0;
        while (count < n) {
          if (have - pos >= 4) {
            uint32_t len;
            std::memcpy(&len, buf.data() + pos, 4);
            if (len > buf.size() - 4)
              return; // corrupt stream
            if (have - pos >= 4 + size_t{len}) {
              touch = touch + (len ? buf[pos + 4] : 0);
              pos += 4 + len;
              ++count;
              continue;
            }
          }
          if (pos > 0) { // keep the partial frame, read more behind it
            std::memmove(buf.data(), buf.data() + pos, have - pos);
            have -= pos;
            pos = 0;
          }
          auto k = ::recv(fd, buf.data() + have, buf.size() - have, 0);
          if (k <= 0) {
            if (k < 0 && errno == EINTR)
              continue;
            return;
          }
          have += static_cast<size_t>(k);
        }
        if (have != pos)
          return; // more bytes than announced frames: protocol error
        write_all(fd, &count, sizeof(count));
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "peer raw server: {}\n", e.what());
  }
}

void raw_accept_loop(int lfd, bool tcp) {
  for (;;) {
    int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (tcp)
      set_nodelay(c);
    std::thread{raw_serve, c}.detach();
  }
}

#ifdef MYCELIUM_BENCH_HAVE_ZMQ
void zmq_echo_loop(void* sock) {
  zmq_msg_t msg;
  zmq_msg_init(&msg);
  for (;;) {
    if (zmq_msg_recv(&msg, sock, 0) < 0) {
      if (zmq_errno() == EINTR)
        continue;
      return; // context terminated
    }
    if (zmq_msg_send(&msg, sock, 0) < 0)
      return;
  }
}
#endif

mt::link_config make_link_config(const options& opt, mt::link_kind kind, bus_mode mode) {
  mt::link_config c;
  c.name = std::string{kind == mt::link_kind::tcp ? "bench-tcp-" : "bench-unix-"} + key_of(mode);
  c.kind = kind;
  c.wait = wait_of(opt, mode);
  c.spin = std::chrono::microseconds{opt.spin_us};
  c.send_queue = opt.send_queue;
  c.overflow = mycelium::overflow_policy::block;
  c.block_timeout = std::chrono::milliseconds(opt.block_timeout_ms);
  return c;
}

int run_peer(const options& opt) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGPIPE, SIG_IGN);
  if (opt.dir.empty())
    throw bench_error("--role peer needs --dir");
  pin_self(opt.cpu);
  caf::actor_system_config cfg;
  configure(cfg, opt, opt.config);
  caf::actor_system sys{cfg};
  std::string ready = "ready";
  // One node + far service + listening link per kind and wait mode. A
  // link asks the I/O loop for its wait mode only while connected, and the
  // driver connects one at a time.
  std::vector<std::unique_ptr<mycelium::node>> nodes;
  std::vector<mt::link> links;
  for (auto kind : {mt::link_kind::unix_socket, mt::link_kind::tcp})
    for (auto mode : {bus_mode::block, bus_mode::spin}) {
      bool tcp = kind == mt::link_kind::tcp;
      std::string key = std::string{tcp ? "tcp_" : "unix_"} + key_of(mode);
      auto& n = *nodes.emplace_back(std::make_unique<mycelium::node>(sys, "peer-" + key));
      auto s = n.start(
        [](caf::actor_system& s, mycelium::service_context ctx) {
          return s.spawn<far_service>(std::move(ctx));
        },
        "far", {}, {}, placement_of(opt));
      if (!s)
        throw bench_error("peer: cannot start far service: " + mycelium::render(s.error()));
      auto lc = make_link_config(opt, kind, mode);
      lc.role = mt::link_role::listen;
      lc.address = tcp ? "127.0.0.1" : opt.dir + "/link-" + key_of(mode) + ".sock";
      auto l = mt::link::start(n, mb::descriptor(), lc);
      if (!l)
        throw bench_error("peer: cannot start link: " + mycelium::render(l.error()));
      links.push_back(*l);
      ready += " link_" + key + "=" + (tcp ? std::to_string(l->port()) : lc.address);
    }
  // CAF BASP
  auto far = sys.spawn(caf_far);
  auto basp = sys.middleman().publish(far, 0, "127.0.0.1");
  if (!basp)
    throw bench_error("peer: middleman().publish failed: " + sys.render(basp.error()));
  ready += fmt::format(" basp={}", *basp);
  // raw servers
  auto upath = opt.dir + "/raw.sock";
  int ufd = listen_unix(upath);
  uint16_t tport = 0;
  int tfd = listen_tcp(tport);
  std::thread{raw_accept_loop, ufd, false}.detach();
  std::thread{raw_accept_loop, tfd, true}.detach();
  ready += fmt::format(" raw_unix={} raw_tcp={}", upath, tport);
#ifdef MYCELIUM_BENCH_HAVE_ZMQ
  void* zctx = zmq_ctx_new();
  for (std::string ep : {std::string{"tcp://127.0.0.1:*"}, "ipc://" + opt.dir + "/zmq.ipc"}) {
    void* s = zmq_socket(zctx, ZMQ_PAIR);
    if (zmq_bind(s, ep.c_str()) != 0)
      throw bench_error("peer: zmq_bind " + ep + ": " + zmq_strerror(zmq_errno()));
    char last[256];
    size_t len = sizeof(last);
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &len);
    ready += (ep.rfind("tcp", 0) == 0 ? " zmq_tcp=" : " zmq_ipc=") + std::string{last};
    std::thread{zmq_echo_loop, s}.detach();
  }
#endif
  std::cout << ready << std::endl;
  // Until the driver closes our stdin (or dies: PR_SET_PDEATHSIG).
  char buf[64];
  while (::read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
  }
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(0); // no teardown: threads sit in accept/recv
}

// -- the child process and the round-trip paths (driver side) ----------------------------

using mycelium::test_support::child_process;
using mycelium::test_support::temp_dir;

class raw_rtt final : public rtt_path {
public:
  raw_rtt(std::string name, int fd, bool spin) : rtt_path(std::move(name)), fd_(fd), spin_(spin) {
    char mode = spin ? mode_echo_spin : mode_echo;
    write_all(fd_.fd, &mode, 1);
  }

  void set_payload(const std::vector<uint8_t>& payload) override {
    out_.resize(sizeof(raw_header) + payload.size());
    std::memcpy(out_.data() + sizeof(raw_header), payload.data(), payload.size());
    in_.resize(out_.size());
  }

  int64_t run(size_t n, std::vector<uint32_t>* out) override {
    auto begin = now_ns();
    auto len = static_cast<uint32_t>(out_.size() - sizeof(raw_header));
    for (uint64_t i = 0; i < n; ++i) {
      raw_header h{i, len, 0};
      std::memcpy(out_.data(), &h, sizeof(h));
      auto t0 = ticks();
      write_all(fd_.fd, out_.data(), out_.size());
      if (!read_full(fd_.fd, in_.data(), in_.size(), spin_))
        throw bench_error(name() + ": the peer closed the connection");
      auto t1 = ticks();
      raw_header r;
      std::memcpy(&r, in_.data(), sizeof(r));
      if (r.seq != i || r.len != len)
        throw bench_error(name() + ": wrong answer");
      record(out, t1 - t0, r.pad);
    }
    return now_ns() - begin;
  }

private:
  fd_guard fd_;
  bool spin_;
  std::vector<uint8_t> out_, in_;
};

#ifdef MYCELIUM_BENCH_HAVE_ZMQ
class zmq_rtt final : public rtt_path {
public:
  zmq_rtt(std::string name, void* ctx, const std::string& endpoint) : rtt_path(std::move(name)) {
    sock_ = zmq_socket(ctx, ZMQ_PAIR);
    if (sock_ == nullptr || zmq_connect(sock_, endpoint.c_str()) != 0)
      throw bench_error("zmq_connect " + endpoint + ": " + zmq_strerror(zmq_errno()));
    int linger = 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof(linger));
  }
  ~zmq_rtt() override {
    zmq_close(sock_);
  }

  void set_payload(const std::vector<uint8_t>& payload) override {
    out_.resize(8 + payload.size());
    std::memcpy(out_.data() + 8, payload.data(), payload.size());
    in_.resize(out_.size() + 8);
  }

  int64_t run(size_t n, std::vector<uint32_t>* out) override {
    auto begin = now_ns();
    for (uint64_t i = 0; i < n; ++i) {
      std::memcpy(out_.data(), &i, 8);
      auto t0 = ticks();
      if (zmq_send(sock_, out_.data(), out_.size(), 0) < 0)
        throw bench_error(name() + ": zmq_send: " + zmq_strerror(zmq_errno()));
      int k;
      while ((k = zmq_recv(sock_, in_.data(), in_.size(), 0)) < 0 && zmq_errno() == EINTR) {
      }
      auto t1 = ticks();
      uint64_t seq;
      std::memcpy(&seq, in_.data(), 8);
      if (k != static_cast<int>(out_.size()) || seq != i)
        throw bench_error(name() + ": wrong answer");
      if (out)
        out->push_back(ticks_to_ns(t1 - t0));
    }
    return now_ns() - begin;
  }

private:
  void* sock_ = nullptr;
  std::vector<uint8_t> out_, in_;
};
#endif

/// A's side of the bus paths over one link kind: a node with the driver
/// service, and the link it connects to B for one chunk at a time, in the
/// wait mode of the path (as in mycelium-bench-shm): a busy-polling link
/// must not keep either I/O loop spinning while other paths are measured.
class bus_side {
public:
  /// `ends`: B's listening link per mode (Unix: socket path; TCP: port).
  bus_side(caf::actor_system& sys, const options& opt, mt::link_kind kind,
           std::map<bus_mode, std::pair<std::string, uint16_t>> ends)
    : opt_(opt), kind_(kind), ends_(std::move(ends)),
      node_(sys, kind == mt::link_kind::tcp ? "driver-tcp" : "driver-unix") {
    auto s = node_.start(
      [lj = &lj_, tj = &tj_](caf::actor_system& s, mycelium::service_context ctx) {
        return s.spawn<driver_service>(std::move(ctx), lj, tj);
      },
      "driver", {}, {}, placement_of(opt));
    if (!s)
      throw bench_error("cannot start the driver service: " + mycelium::render(s.error()));
  }

  bus_side(const bus_side&) = delete;
  bus_side& operator=(const bus_side&) = delete;

  /// Connects a fresh link in `mode` (closing the current one) and waits
  /// until it is up and the peer's subscriptions are known.
  void connect(bus_mode mode) {
    disconnect();
    auto lc = make_link_config(opt_, kind_, mode);
    lc.role = mt::link_role::connect;
    auto& [address, port] = ends_.at(mode);
    lc.address = kind_ == mt::link_kind::tcp ? std::string{"127.0.0.1"} : address;
    lc.port = port;
    auto l = mt::link::start(node_, mb::descriptor(), lc);
    if (!l)
      throw bench_error("cannot start the link: " + mycelium::render(l.error()));
    link_ = *l;
    endpoint_ = lc.endpoint();
    ensure_ready();
  }

  /// Waits until the link is up and the peer's subscriptions are known
  /// (immediate when nothing changed; after a reconnect the interest frames
  /// have to arrive again before a round may start).
  void ensure_ready() {
    if (!link_)
      throw bench_error("no link connected");
    if (!link_.await_up(10s))
      throw bench_error("link " + endpoint_ + " did not come up: " + link_.stats().last_error);
    for (auto id : {mb::ping::type_id, mb::tick::type_id, mb::link_tput_begin::type_id})
      if (!link_.await_peer_interest(id, 10s))
        throw bench_error("the peer's interest did not arrive over " + endpoint_);
  }

  /// Closes the link and keeps its counters.
  void disconnect() {
    if (!link_)
      return;
    auto s = link_.stats();
    totals_.frames_sent += s.frames_sent;
    totals_.bytes_sent += s.bytes_sent;
    totals_.frames_received += s.frames_received;
    totals_.back_pressured += s.back_pressured;
    totals_.dropped_overflow += s.dropped_overflow;
    totals_.dropped_link_down += s.dropped_link_down;
    totals_.bad_frames += s.bad_frames;
    totals_.disconnects += s.disconnects;
    link_.stop();
    link_ = mt::link{};
  }

  ~bus_side() {
    disconnect();
    node_.stop();
  }

  lat_job& lat() { return lj_; }
  tput_job& tput() { return tj_; }
  mycelium::node& node() { return node_; }
  mt::link& link() { return link_; }
  /// Counters summed over every link closed so far.
  const mt::link_stats& totals() const { return totals_; }

private:
  const options& opt_;
  mt::link_kind kind_;
  std::map<bus_mode, std::pair<std::string, uint16_t>> ends_;
  lat_job lj_;
  tput_job tj_;
  mycelium::node node_;
  mt::link link_;
  mt::link_stats totals_;
  std::string endpoint_;
};

class bus_rtt final : public rtt_path {
public:
  bus_rtt(std::string name, bus_side& side, bus_mode mode)
    : rtt_path(std::move(name)), side_(side), mode_(mode) {}

  void set_payload(const std::vector<uint8_t>& payload) override {
    side_.lat().payload = payload;
  }

  void begin_chunk() override {
    side_.connect(mode_);
  }

  void end_chunk() override {
    side_.disconnect();
  }

  int64_t run(size_t n, std::vector<uint32_t>* out) override {
    side_.ensure_ready();
    auto& j = side_.lat();
    j.n = n;
    j.samples = out;
    j.errors = 0;
    j.done = std::promise<void>{};
    auto f = j.done.get_future();
    if (side_.node().publish(mb::lat_start{round_++}) != mycelium::publish_status::ok)
      throw bench_error(name() + ": cannot start the pinger");
    await_done(f, name(), 600s);
    if (j.errors)
      throw bench_error(fmt::format("{}: {} wrong answers or failed publishes", name(), j.errors));
    return j.elapsed_ns;
  }

private:
  bus_side& side_;
  bus_mode mode_;
  uint64_t round_ = 0;
};

// -- results (rtt_stats, size_result, tput_variant in bench_two_process.hpp) -------------

struct kind_result {
  std::string kind; // unix | tcp
  std::vector<size_result> latency;
  std::vector<tput_variant> tput;
  mt::link_stats link; // after the run
  const tput_variant* get(const std::string& n) const {
    for (auto& v : tput)
      if (v.name == n)
        return &v;
    return nullptr;
  }
};

struct scenario_result {
  scenario sc;
  sched_info sched;
  int driver_cpu = -1, peer_cpu = -1;
  std::vector<kind_result> kinds;
  std::vector<std::string> notes;
  std::string load0, load1;
  double seconds = 0;
};

// -- latency runner -----------------------------------------------------------------------------

std::vector<size_result> run_latency(const options& opt,
                                     std::vector<std::unique_ptr<rtt_path>>& paths,
                                     const std::string& label, const pair_counters& pc) {
  std::vector<size_result> out;
  for (auto size : opt.sizes) {
    auto payload = make_payload(size);
    auto total = roundtrips_for(opt, size);
    auto per_round = std::max<size_t>(1, total / opt.rounds);
    std::vector<std::vector<uint32_t>> samples(paths.size());
    std::vector<int64_t> elapsed(paths.size(), 0);
    std::vector<proc_counters> used(paths.size());
    std::vector<std::pair<uint64_t, uint64_t>> cpu0(paths.size());
    for (size_t k = 0; k < paths.size(); ++k) {
      paths[k]->set_payload(payload);
      cpu0[k] = paths[k]->same_cpu();
      samples[k].reserve(per_round * opt.rounds);
      paths[k]->begin_chunk();
      paths[k]->run(opt.warmup, nullptr);
      paths[k]->end_chunk();
    }
    for (size_t r = 0; r < opt.rounds; ++r)
      for (size_t q = 0; q < paths.size(); ++q) {
        auto k = (q + r) % paths.size(); // rotate the order every round
        paths[k]->begin_chunk();
        paths[k]->run(opt.chunk_warmup, nullptr);
        auto c0 = pc.read();
        elapsed[k] += paths[k]->run(per_round, &samples[k]);
        auto c1 = pc.read();
        paths[k]->end_chunk();
        used[k].switches += c1.switches - c0.switches;
        used[k].cpu_ns += c1.cpu_ns - c0.cpu_ns;
      }
    size_result res;
    res.size = size;
    std::string line;
    for (size_t k = 0; k < paths.size(); ++k) {
      auto st = make_stats(std::move(samples[k]), elapsed[k]);
      if (st.round_trips > 0) {
        st.switches_per_rt = static_cast<double>(std::max<int64_t>(used[k].switches, 0))
                             / static_cast<double>(st.round_trips);
        st.cpu_ns_per_rt = static_cast<double>(std::max<int64_t>(used[k].cpu_ns, 0))
                           / static_cast<double>(st.round_trips);
      }
      if (auto [same, checked] = paths[k]->same_cpu(); checked > cpu0[k].second)
        st.same_cpu = static_cast<double>(same - cpu0[k].first)
                      / static_cast<double>(checked - cpu0[k].second);
      res.paths[paths[k]->name()] = st;
      line += fmt::format(" {} {} us", paths[k]->name(), us(res.paths[paths[k]->name()].median));
    }
    fmt::print("  {} {:>7}: median RTT{}; bus/raw {}, bus-spin/raw-spin {}\n", label,
               human_size(size), line, ratio_text(res.ratio("bus", "raw")),
               ratio_text(res.ratio("bus-spin", "raw-spin")));
    std::fflush(stdout);
    out.push_back(std::move(res));
  }
  return out;
}

// -- throughput runner ---------------------------------------------------------------------------

/// Whether the bus throughput variant can run: its driver publishes the
/// whole stream in one handler and relies on policy `block` to wait for room
/// in the link's send queue. On the loop the link's broker that would make
/// room runs on the same thread, after the handler returns: every publish
/// over `send_queue` would wait `block_timeout` and fail (the library does
/// not yet refuse at once on the loop thread), so the round never ends.
bool bus_enabled(const options& opt) {
  return placement_of(opt) == mycelium::placement::pool;
}

/// Raw one-way stream: N frames [u32 len][payload]; returns elapsed ns from
/// the first write to the sink's count.
int64_t raw_stream(int fd, uint64_t n, const std::vector<uint8_t>& payload, size_t batch,
                   bool per_frame) {
  std::vector<uint8_t> buf;
  buf.reserve(batch + payload.size() + 4);
  auto len = static_cast<uint32_t>(payload.size());
  auto t0 = now_ns();
  write_all(fd, &n, sizeof(n));
  for (uint64_t i = 0; i < n; ++i) {
    auto at = buf.size();
    buf.resize(at + 4 + payload.size());
    std::memcpy(buf.data() + at, &len, 4);
    std::memcpy(buf.data() + at + 4, payload.data(), payload.size());
    if (per_frame || buf.size() >= batch) {
      write_all(fd, buf.data(), buf.size());
      buf.clear();
    }
  }
  if (!buf.empty())
    write_all(fd, buf.data(), buf.size());
  uint64_t count = 0;
  if (!read_full(fd, &count, sizeof(count), false))
    throw bench_error("raw sink closed the connection");
  auto dt = now_ns() - t0;
  if (count != n)
    throw bench_error(fmt::format("raw sink counted {} of {} frames", count, n));
  return dt;
}

std::vector<tput_variant> run_tput(const options& opt, const std::string& kind, bus_side& bus,
                                   const std::function<int()>& connect_raw,
                                   const pair_counters& pc, caf::actor_system& sys,
                                   const caf::actor& caf_remote) {
  auto payload = make_payload(opt.tput_payload);
  fd_guard batched{connect_raw()};
  fd_guard single{connect_raw()};
  for (auto* f : {&batched, &single})
    write_all(f->fd, &mode_sink, 1);
  std::vector<tput_variant> vs;
  for (auto& n : opt.tput_paths)
    if ((n != "caf" || caf_remote) // BASP: TCP only
        && (n != "bus" || bus_enabled(opt)))
      vs.emplace_back().name = n;
  tput_job caf_job;
  caf_job.payload = payload;
  caf::actor streamer;
  if (caf_remote)
    streamer = sys.spawn<caf_streamer>(&caf_job, caf_remote);
  struct exit_guard {
    caf::actor& a;
    ~exit_guard() {
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
  } streamer_guard{streamer};
  auto& tj = bus.tput();
  tj.payload = payload;
  uint64_t round_no = 1;
  auto run_bus = [&](uint64_t n) {
    bus.ensure_ready();
    tj.n = n;
    tj.acked = 0;
    tj.done = std::promise<void>{};
    auto f = tj.done.get_future();
    bus.node().publish(mb::fan_start{round_no++});
    await_done(f, "bus throughput over " + kind, 600s);
    if (tj.not_ok || tj.acked != n)
      throw bench_error(fmt::format("bus throughput over {}: {} publishes not ok, {} of {} "
                                    "counted (link: back_pressured {}, dropped {})",
                                    kind, tj.not_ok, tj.acked, n,
                                    bus.link().stats().back_pressured,
                                    bus.link().stats().dropped_overflow));
    return tj.elapsed_ns;
  };
  auto run_caf = [&](uint64_t n) {
    caf_job.n = n;
    caf_job.acked = 0;
    caf_job.done = std::promise<void>{};
    auto f = caf_job.done.get_future();
    caf::anon_send(streamer, start_atom::value, round_no++);
    await_done(f, "CAF BASP throughput", 600s);
    if (caf_job.acked != n)
      throw bench_error(fmt::format("CAF BASP throughput: {} of {} counted", caf_job.acked, n));
    return caf_job.elapsed_ns;
  };
  auto run = [&](size_t k, uint64_t n) -> int64_t {
    if (vs[k].name == "raw")
      return raw_stream(batched.fd, n, payload, opt.tput_batch, false);
    if (vs[k].name == "raw-1write")
      return raw_stream(single.fd, n, payload, opt.tput_batch, true);
    if (vs[k].name == "caf")
      return run_caf(n);
    return run_bus(n);
  };
  // warm-up
  for (size_t k = 0; k < vs.size(); ++k)
    run(k, std::max<uint64_t>(1, opt.tput_msgs / 10));
  for (size_t r = 0; r < opt.tput_rounds; ++r)
    for (size_t q = 0; q < vs.size(); ++q) {
      auto k = (q + r) % vs.size();
      auto s0 = bus.link().stats();
      auto c0 = pc.read();
      auto dt = run(k, opt.tput_msgs);
      auto c1 = pc.read();
      auto s1 = bus.link().stats();
      auto& v = vs[k];
      v.cpu_ns += c1.cpu_ns - c0.cpu_ns;
      v.rates.push_back(static_cast<double>(opt.tput_msgs) * 1e9 / static_cast<double>(dt));
      v.messages += opt.tput_msgs;
      v.total_ns += dt;
      if (v.name == "bus")
        v.bytes_per_msg = static_cast<double>(s1.bytes_sent - s0.bytes_sent)
                          / static_cast<double>(opt.tput_msgs);
      else if (v.name != "caf") // BASP's bytes are not counted here
        v.bytes_per_msg = 4.0 + static_cast<double>(opt.tput_payload);
    }
  std::string line;
  for (auto& v : vs)
    line += fmt::format(" {} {} msg/s", v.name, rate(v.median()));
  fmt::print("  {} throughput ({} B payload, one-way):{}\n", kind, opt.tput_payload, line);
  std::fflush(stdout);
  return vs;
}

// -- one scenario --------------------------------------------------------------------------------

scenario_result run_scenario(const options& opt, const scenario& sc) {
  scenario_result res;
  res.sc = sc;
  res.load0 = loadavg();
  auto t0 = now_ns();
  auto [dcpu, pcpu] = cpus_of(sc.pin);
  res.driver_cpu = dcpu;
  res.peer_cpu = pcpu;
  temp_dir dir{"mycelium-links-"};
  std::vector<std::string> argv{
    "mycelium-bench-links", "--role", "peer", "--config", sc.config, "--dir", dir.path.string(),
    "--cpu", std::to_string(pcpu), "--threads", std::to_string(opt.threads),
    "--ws-aggressive-polls", std::to_string(opt.ws_aggressive_polls),
    "--ws-moderate-sleep-ns", std::to_string(opt.ws_moderate_sleep_ns),
    "--ws-relaxed-sleep-us", std::to_string(opt.ws_relaxed_sleep_us),
    "--mm-workers", std::to_string(opt.mm_workers),
    "--max-throughput", std::to_string(opt.max_throughput),
    "--send-queue", std::to_string(opt.send_queue),
    "--block-timeout-ms", std::to_string(opt.block_timeout_ms),
    "--placement", opt.placement, "--bus-wait", opt.bus_wait,
    "--bus-spin-wait", opt.bus_spin_wait, "--spin-us", std::to_string(opt.spin_us)};
  child_process peer{argv, (dir.path / "peer.log").string(), "/proc/self/exe",
                     std::chrono::seconds(2)};
  fatal_signal_guard registered{peer.pid()};
  auto line = peer.read_line(30s);
  if (line.rfind("ready", 0) != 0)
    throw bench_error("the peer process did not start: " + peer.stderr_text());
  auto kv = parse_kv(line);
  pin_self(dcpu);
  {
    caf::actor_system_config cfg;
    configure(cfg, opt, sc.config);
    caf::actor_system sys{cfg};
    res.sched = read_sched(sys);
    fmt::print("\n== scenario {}: driver pid {} cpu {}, peer pid {} cpu {}\n   {}\n", sc.name(),
               ::getpid(), dcpu < 0 ? std::string{"any"} : std::to_string(dcpu), peer.pid(),
               pcpu < 0 ? std::string{"any"} : std::to_string(pcpu), sched_text(res.sched));
    std::fflush(stdout);
#ifdef MYCELIUM_BENCH_HAVE_ZMQ
    // Terminated after every socket of it is closed (the paths die first).
    std::unique_ptr<void, int (*)(void*)> zctx_owner{zmq_ctx_new(), &zmq_ctx_term};
    void* zctx = zctx_owner.get();
#endif
    for (auto& kind : opt.kinds) {
      bool tcp = kind == "tcp";
      kind_result kr;
      kr.kind = kind;
      auto connect_raw = [&]() {
        return tcp ? connect_tcp(static_cast<uint16_t>(std::stoi(kv.at("raw_tcp"))))
                   : connect_unix(kv.at("raw_unix"));
      };
      std::map<bus_mode, std::pair<std::string, uint16_t>> ends;
      for (auto mode : {bus_mode::block, bus_mode::spin}) {
        auto& v = kv.at("link_" + kind + "_" + key_of(mode));
        ends[mode] = tcp ? std::make_pair(std::string{}, static_cast<uint16_t>(std::stoi(v)))
                         : std::make_pair(v, uint16_t{0});
      }
      bus_side bus{sys, opt, tcp ? mt::link_kind::tcp : mt::link_kind::unix_socket,
                   std::move(ends)};
      auto wants = [](const std::vector<std::string>& v, const char* x) {
        return std::find(v.begin(), v.end(), x) != v.end();
      };
      caf::actor caf_remote; // BASP runs over TCP only
      if (tcp && ((!opt.skip_latency && wants(opt.paths, "caf"))
                  || (!opt.skip_tput && wants(opt.tput_paths, "caf"))))
        caf_remote = remote_far(sys, static_cast<uint16_t>(std::stoi(kv.at("basp"))));
      if (!opt.skip_latency) {
        std::vector<std::unique_ptr<rtt_path>> paths;
        for (auto& p : opt.paths) {
          bool spinning = p == "raw-spin"
                          || (p == "bus-spin"
                              && wait_of(opt, bus_mode::spin) != mt::wait_mode::block);
          if (spinning && sc.pin != "split") {
            // Unpinned, the scheduler often stacks both spinning ends on one
            // CPU (then every round trip waits for a time slice: ms); pinned
            // to one CPU that is certain.
            std::string note = "raw-spin and bus-spin run only with pin=split (two "
                               "busy-polling ends need a CPU each)";
            if (std::find(res.notes.begin(), res.notes.end(), note) == res.notes.end())
              res.notes.push_back(note);
            continue;
          }
          if (p == "raw")
            paths.push_back(std::make_unique<raw_rtt>("raw", connect_raw(), false));
          else if (p == "raw-spin")
            paths.push_back(std::make_unique<raw_rtt>("raw-spin", connect_raw(), true));
          else if (p == "bus")
            paths.push_back(std::make_unique<bus_rtt>("bus", bus, bus_mode::block));
          else if (p == "bus-spin")
            paths.push_back(std::make_unique<bus_rtt>("bus-spin", bus, bus_mode::spin));
          else if (p == "caf") {
            if (!caf_remote)
              continue;
            paths.push_back(std::make_unique<caf_rtt>("caf", sys, caf_remote));
          } else if (p == "zmq") {
#ifdef MYCELIUM_BENCH_HAVE_ZMQ
            paths.push_back(std::make_unique<zmq_rtt>("zmq", zctx,
                                                      kv.at(tcp ? "zmq_tcp" : "zmq_ipc")));
#endif
          }
        }
        kr.latency = run_latency(opt, paths, fmt::format("[{}] {}", sc.name(), kind),
                                 pair_counters{peer.pid()});
      }
      if (!opt.skip_tput && !bus_enabled(opt)
          && std::find(opt.tput_paths.begin(), opt.tput_paths.end(), "bus")
               != opt.tput_paths.end()) {
        std::string note = "bus throughput left out with --placement loop: its driver publishes "
                           "the whole stream in one handler, and on the loop thread a full "
                           "send queue cannot drain until that handler returns";
        if (std::find(res.notes.begin(), res.notes.end(), note) == res.notes.end())
          res.notes.push_back(note);
      }
      if (!opt.skip_tput) {
        bus.connect(bus_mode::block); // the `bus` path's wait mode (--bus-wait)
        kr.tput = run_tput(opt, kind, bus, connect_raw, pair_counters{peer.pid()}, sys,
                           caf_remote);
        bus.disconnect();
      }
      kr.link = bus.totals();
      if (kr.link.back_pressured || kr.link.dropped_overflow || kr.link.dropped_link_down
          || kr.link.bad_frames || kr.link.disconnects)
        res.notes.push_back(fmt::format(
          "{} link counters: back_pressured {} dropped_overflow {} dropped_link_down {} "
          "bad_frames {} disconnects {}",
          kind, kr.link.back_pressured, kr.link.dropped_overflow, kr.link.dropped_link_down,
          kr.link.bad_frames, kr.link.disconnects));
      res.kinds.push_back(std::move(kr));
    }
  }
  pin_self(-1);
  // The peer's warnings and errors (its stderr goes to a file in `dir`).
  std::istringstream plog{peer.stderr_text()};
  for (std::string l; std::getline(plog, l);)
    if (l.find(" WARN ") != std::string::npos || l.find(" ERROR ") != std::string::npos)
      res.notes.push_back("peer: " + l);
  res.load1 = loadavg();
  res.seconds = static_cast<double>(now_ns() - t0) / 1e9;
  return res;
}

// -- output ---------------------------------------------------------------------------------------

void print_scenario(const options& opt, const scenario_result& r) {
  fmt::print("\n=== SCENARIO {} ({}; driver cpu {}, peer cpu {}; loadavg {} -> {}; {:.0f} s)\n",
             r.sc.name(), sched_text(r.sched),
             r.driver_cpu < 0 ? std::string{"any"} : std::to_string(r.driver_cpu),
             r.peer_cpu < 0 ? std::string{"any"} : std::to_string(r.peer_cpu), r.load0, r.load1,
             r.seconds);
  for (auto& k : r.kinds) {
    if (!k.latency.empty()) {
    fmt::print("\nROUND-TRIP LATENCY over {}, us (ROUND TRIPS, not one-way); cs/rt: context "
                 "switches, cpu/rt: on-CPU us, both processes together per round trip; same: "
                 "share of raw round trips echoed on the driver's CPU\n",
                 k.kind);
      fmt::print("{:>7} {:>9} | {:>8} {:>8} {:>8} {:>9} {:>8} | {:>9} | {:>5} {:>6} {:>5} | "
                 "{:>7} {:>7} {:>7}\n",
                 "size", "path", "median", "p99", "p99.9", "max", "mean", "rt/s", "cs/rt",
                 "cpu/rt", "same", "vs raw", "bus/caf", "bus/zmq");
      fmt::print("{}\n", std::string(125, '-'));
      for (auto& s : k.latency) {
        for (auto& p : opt.paths) {
          auto i = s.paths.find(p);
          if (i == s.paths.end())
            continue;
          auto& st = i->second;
          bool bus = p == "bus";
          // bus against the blocking raw sockets, bus-spin against the
          // busy-polling ones: the same wait mode.
          std::string vs_raw = bus               ? ratio_text(s.ratio("bus", "raw"))
                               : p == "bus-spin" ? ratio_text(s.ratio("bus-spin", "raw-spin"))
                                                 : std::string{};
          fmt::print("{:>7} {:>9} | {:>8} {:>8} {:>8} {:>9} {:>8} | {:>9} | {:>5.1f} {:>6} {:>5} | "
                     "{:>7} {:>7} {:>7}\n",
                     human_size(s.size), p, us(st.median), us(st.p99), us(st.p999), us(st.max),
                     us(st.mean), rate(st.rt_per_s), st.switches_per_rt, us(st.cpu_ns_per_rt),
                     st.same_cpu >= 0 ? fmt::format("{:.0f}%", 100 * st.same_cpu) : "",
                     vs_raw, bus ? ratio_text(s.ratio("bus", "caf")) : "",
                     bus ? ratio_text(s.ratio("bus", "zmq")) : "");
        }
      }
    }
    if (!k.tput.empty()) {
      fmt::print("\nONE-WAY THROUGHPUT over {}, {} B payload, {} messages x {} rounds per "
                 "variant (median of rounds)\n",
                 k.kind, opt.tput_payload, opt.tput_msgs, opt.tput_rounds);
      fmt::print("{:>10} | {:>10} | {:>19} | {:>9} | {:>11} | {:>7}\n", "variant", "msg/s",
                 "rounds min..max", "bytes/msg", "cpu ns/msg", "vs raw");
      auto* raw = k.get("raw");
      for (auto& v : k.tput)
        fmt::print("{:>10} | {:>10} | {:>19} | {:>9} | {:>11.0f} | {:>7}\n", v.name,
                   rate(v.median()), rate(v.min()) + ".." + rate(v.max()),
                   v.bytes_per_msg > 0 ? fmt::format("{:.1f}", v.bytes_per_msg) : "-",
                   v.cpu_ns_per_msg(), raw ? ratio_text(v.median() / raw->median()) : "-");
    }
  }
  for (auto& n : r.notes)
    fmt::print("note: {}\n", n);
}

/// Median RTT of `path` at `size` over link kind `kind` in `r` (0: none).
double median_of(const scenario_result& r, const std::string& kind, size_t size,
                 const std::string& path) {
  for (auto& k : r.kinds)
    if (k.kind == kind)
      for (auto& s : k.latency)
        if (s.size == size)
          if (auto i = s.paths.find(path); i != s.paths.end())
            return i->second.median;
  return 0;
}

void print_goals(const options& opt, const std::vector<scenario_result>& all) {
  fmt::print("\nGOALS (DESIGN.md): Unix/TCP RTT through the bus <= 1.2 x a raw socket "
             "ping-pong in the same run and the same wait mode (bus [link wait {}] vs raw "
             "blocking; bus-spin [link wait {}] vs raw-spin); >= 5 x faster than CAF BASP; "
             "TCP >= 2 M msg/s one-way (64 B); bus services: placement {}\n",
             opt.bus_wait, opt.bus_spin_wait, opt.placement);
  for (auto& r : all)
    for (auto& k : r.kinds) {
      for (auto& s : k.latency) {
        std::string line;
        for (auto [bus, raw] : {std::pair<const char*, const char*>{"bus", "raw"},
                                {"bus-spin", "raw-spin"}}) {
          if (s.paths.count(bus) == 0 && s.paths.count(raw) == 0)
            continue;
          auto q = s.ratio(bus, raw);
          line += fmt::format("{}{}/{} {} ({})", line.empty() ? "" : ", ", bus, raw,
                              ratio_text(q),
                              q > 0 ? (q <= 1.2 ? "met" : "NOT met") : "not measured");
        }
        // BASP has no Unix transport: Unix links are held against CAF over TCP.
        auto caf = median_of(r, "tcp", s.size, "caf");
        auto bus = median_of(r, k.kind, s.size, "bus");
        auto speedup = bus > 0 && caf > 0 ? caf / bus : 0.0;
        fmt::print("  [{}] {} {:>6}: {}{}\n", r.sc.name(), k.kind, human_size(s.size), line,
                   speedup > 0 ? fmt::format(", CAF{}/bus {:.2f} ({})",
                                             k.kind == "tcp" ? "" : "(tcp)", speedup,
                                             speedup >= 5.0 ? "met" : "NOT met")
                               : std::string{});
      }
      if (auto* b = k.get("bus"); b && k.kind == "tcp") {
        auto* c = k.get("caf");
        fmt::print("  [{}] tcp throughput: bus {} msg/s ({}){}\n", r.sc.name(),
                   rate(b->median()), b->median() >= 2e6 ? "met" : "NOT met",
                   c && c->median() > 0
                     ? fmt::format("; bus/CAF BASP {:.1f} x", b->median() / c->median())
                     : std::string{});
      }
    }
}

void write_json(const options& opt, const std::vector<scenario_result>& all,
                const std::string& timer_text, const std::string& started,
                const std::string& load0, double total_s) {
  std::ostringstream o;
  o << "{\n  \"benchmark\": \"mycelium-bench-links\",\n";
  o << "  \"started\": " << json_str(started) << ",\n";
  o << "  \"duration_s\": " << fmt::format("{:.1f}", total_s) << ",\n";
  o << "  \"latency_unit\": \"round-trip time in ns (NOT one-way)\",\n";
  o << "  \"throughput_unit\": \"one-way messages per second, median of rounds\",\n";
  o << "  \"machine\": {" << json_machine_fields()
#ifdef MYCELIUM_BENCH_HAVE_ZMQ
    << ", \"zmq_version\": " << json_str(fmt::format("{}.{}.{}", ZMQ_VERSION_MAJOR,
                                                     ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH))
#endif
    << ", \"loadavg_at_start\": " << json_str(load0)
    << ", \"loadavg_at_end\": " << json_str(loadavg())
    << ", \"timer\": " << json_str(timer_text) << "},\n";
  o << "  \"options\": {\"sizes\": [";
  for (size_t i = 0; i < opt.sizes.size(); ++i)
    o << (i ? ", " : "") << opt.sizes[i];
  o << "], \"rounds\": " << opt.rounds << ", \"roundtrips\": " << opt.roundtrips
    << ", \"roundtrips_large\": " << opt.roundtrips_large << ", \"warmup\": " << opt.warmup
    << ", \"threads\": " << opt.threads << ", \"send_queue\": " << opt.send_queue
    << ", \"block_timeout_ms\": " << opt.block_timeout_ms
    << ", \"placement\": " << json_str(opt.placement)
    << ", \"bus_wait\": " << json_str(opt.bus_wait)
    << ", \"bus_spin_wait\": " << json_str(opt.bus_spin_wait)
    << ", \"spin_us\": " << opt.spin_us << ", \"chunk_warmup\": " << opt.chunk_warmup
    << ", \"middleman\": \"io_loop (mycelium::transports::load_io_loop)\""
    << ", \"tput_messages\": " << opt.tput_msgs << ", \"tput_rounds\": " << opt.tput_rounds
    << ", \"tput_payload\": " << opt.tput_payload << ", \"tput_raw_batch_bytes\": "
    << opt.tput_batch << ", \"quick\": " << (opt.quick ? "true" : "false") << "},\n";
  o << "  \"scenarios\": [\n";
  for (size_t si = 0; si < all.size(); ++si) {
    auto& r = all[si];
    auto& s = r.sched;
    o << "    {\"name\": " << json_str(r.sc.name()) << ", \"config\": " << json_str(r.sc.config)
      << ", \"pin\": " << json_str(r.sc.pin) << ", \"driver_cpu\": " << r.driver_cpu
      << ", \"peer_cpu\": " << r.peer_cpu << ", \"seconds\": " << fmt::format("{:.1f}", r.seconds)
      << ", \"loadavg\": [" << json_str(r.load0) << ", " << json_str(r.load1) << "],\n";
    o << "     \"scheduler\": {\"policy\": " << json_str(s.policy)
      << ", \"max_threads\": " << s.max_threads << ", \"workers\": " << s.workers
      << ", \"max_throughput\": " << s.max_throughput
      << ", \"middleman_workers\": " << s.mm_workers
      << ", \"aggressive_poll_attempts\": " << s.aggressive_poll_attempts
      << ", \"moderate_poll_attempts\": " << s.moderate_poll_attempts
      << ", \"moderate_sleep_ns\": " << s.moderate_sleep_ns
      << ", \"relaxed_sleep_ns\": " << s.relaxed_sleep_ns << "},\n";
    o << "     \"notes\": [";
    for (size_t i = 0; i < r.notes.size(); ++i)
      o << (i ? ", " : "") << json_str(r.notes[i]);
    o << "],\n     \"kinds\": [\n";
    for (size_t ki = 0; ki < r.kinds.size(); ++ki) {
      auto& k = r.kinds[ki];
      o << "       {\"kind\": " << json_str(k.kind) << ",\n        \"latency\": [\n";
      for (size_t i = 0; i < k.latency.size(); ++i) {
        auto& sr = k.latency[i];
        o << "          {\"size\": " << sr.size;
        for (auto& [name, st] : sr.paths)
          o << ", " << json_str(name) << ": " << json_stats(st);
        o << ", \"ratio_median_bus_over_raw\": " << fmt::format("{:.4f}", sr.ratio("bus", "raw"))
          << ", \"ratio_median_bus_over_raw_spin\": "
          << fmt::format("{:.4f}", sr.ratio("bus", "raw-spin"))
          << ", \"ratio_median_bus_spin_over_raw_spin\": "
          << fmt::format("{:.4f}", sr.ratio("bus-spin", "raw-spin"))
          << ", \"ratio_median_bus_over_caf\": " << fmt::format("{:.4f}", sr.ratio("bus", "caf"))
          << ", \"ratio_median_bus_over_zmq\": " << fmt::format("{:.4f}", sr.ratio("bus", "zmq"))
          << "}" << (i + 1 < k.latency.size() ? ",\n" : "\n");
      }
      o << "        ],\n        \"throughput\": {";
      for (size_t i = 0; i < k.tput.size(); ++i) {
        auto& v = k.tput[i];
        o << (i ? ", " : "") << json_str(v.name) << ": {\"msgs_per_s_median\": "
          << fmt::format("{:.0f}", v.median()) << ", \"msgs_per_s_aggregate\": "
          << fmt::format("{:.0f}", v.total_ns ? static_cast<double>(v.messages) * 1e9
                                                  / static_cast<double>(v.total_ns)
                                              : 0.0)
          << ", \"bytes_per_msg\": " << fmt::format("{:.1f}", v.bytes_per_msg)
          << ", \"cpu_ns_per_msg\": " << fmt::format("{:.0f}", v.cpu_ns_per_msg())
          << ", \"rounds\": [";
        for (size_t q = 0; q < v.rates.size(); ++q)
          o << (q ? ", " : "") << fmt::format("{:.0f}", v.rates[q]);
        o << "]}";
      }
      o << "},\n        \"link\": {\"frames_sent\": " << k.link.frames_sent
        << ", \"bytes_sent\": " << k.link.bytes_sent
        << ", \"frames_received\": " << k.link.frames_received
        << ", \"back_pressured\": " << k.link.back_pressured
        << ", \"dropped_overflow\": " << k.link.dropped_overflow
        << ", \"dropped_link_down\": " << k.link.dropped_link_down
        << ", \"bad_frames\": " << k.link.bad_frames << "}}"
        << (ki + 1 < r.kinds.size() ? ",\n" : "\n");
    }
    o << "     ]}" << (si + 1 < all.size() ? ",\n" : "\n");
  }
  o << "  ]\n}\n";
  std::filesystem::path p{opt.json};
  if (p.has_parent_path())
    std::filesystem::create_directories(p.parent_path());
  std::ofstream f{p};
  f << o.str();
  if (!f)
    fmt::print(stderr, "cannot write {}\n", opt.json);
  else
    fmt::print("\nwrote {}\n", opt.json);
}

int run_driver(options& opt) {
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_fatal_signal);
  std::signal(SIGTERM, on_fatal_signal);
  std::vector<scenario> scs;
  for (auto& s : opt.scenarios)
    scs.push_back(parse_scenario(s));
  auto t_start = now_ns();
  if (opt.timer == "tsc" && cpu_has_invariant_tsc()) {
    g_ns_per_tick = calibrate_tsc();
    g_tsc = true;
  }
  std::string timer_text = g_tsc ? fmt::format("rdtsc, {:.4f} GHz calibrated against steady_clock",
                                               1.0 / g_ns_per_tick)
                                 : std::string{"std::chrono::steady_clock"};
  char started[64];
  auto tt = std::time(nullptr);
  std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&tt));
  auto load0 = loadavg();
  fmt::print("mycelium-bench-links  {}  cpu: {}  hw threads: {}  loadavg: {}\n", started,
             read_first_line_with("/proc/cpuinfo", "model name"),
             std::thread::hardware_concurrency(), load0);
  fmt::print("timer: {}; ALL LATENCIES ARE ROUND TRIPS (A -> B -> A); throughput is one-way\n",
             timer_text);
  fmt::print("round trips per path: {} for sizes <= 1 KiB, {} above, in {} alternating rounds, "
             "after {} warm-up round trips; ZeroMQ: {}\n",
             opt.roundtrips, opt.roundtrips_large, opt.rounds, opt.warmup,
             have_zmq ? "built in" : "not built (libzmq not found)");
#ifndef NDEBUG
  fmt::print("WARNING: built without NDEBUG (not a Release build)\n");
#endif
  std::vector<scenario_result> results;
  for (auto& sc : scs)
    results.push_back(run_scenario(opt, sc));
  for (auto& r : results)
    print_scenario(opt, r);
  print_goals(opt, results);
  auto total_s = static_cast<double>(now_ns() - t_start) / 1e9;
  write_json(opt, results, timer_text, started, load0, total_s);
  fmt::print("total run time {:.1f} s\n", total_s);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"mycelium-bench-links: round-trip latency and one-way throughput of Mycelium's "
               "Unix and TCP links between two processes, against raw sockets, CAF remote "
               "actors (BASP) and ZeroMQ in the same run"};
  app.option_defaults()->always_capture_default();
  app.add_option("--sizes", opt.sizes, "payload sizes in bytes (latency)")->delimiter(',');
  app.add_option("--rounds", opt.rounds, "alternating timed rounds per size");
  app.add_option("--roundtrips", opt.roundtrips,
                 "timed round trips per path for sizes <= 1 KiB (split over the rounds)");
  app.add_option("--roundtrips-large", opt.roundtrips_large,
                 "timed round trips per path for sizes > 1 KiB");
  app.add_option("--warmup", opt.warmup, "untimed warm-up round trips per path and size");
  app.add_option("--kinds", opt.kinds, "link kinds: unix, tcp")
    ->delimiter(',')
    ->check(CLI::IsMember({"unix", "tcp"}));
  app.add_option("--paths", opt.paths,
                 "latency paths: raw (blocking sockets), raw-spin (busy-polling sockets), "
                 "bus (link wait --bus-wait, vs raw), bus-spin (link wait --bus-spin-wait, "
                 "vs raw-spin), caf (BASP, TCP only), zmq")
    ->delimiter(',')
    ->check(CLI::IsMember({"raw", "raw-spin", "bus", "bus-spin", "caf", "zmq"}));
  app.add_option("--placement", opt.placement,
                 "where the bus services of both processes run: pool (CAF's workers) or "
                 "loop (the node's I/O loop thread)")
    ->check(CLI::IsMember({"pool", "loop"}));
  app.add_option("--bus-wait", opt.bus_wait,
                 "link_config::wait of the `bus` path's links on both sides (and of the "
                 "throughput part): block, spin_then_block or busy_poll")
    ->check(CLI::IsMember({"block", "spin_then_block", "busy_poll"}));
  app.add_option("--bus-spin-wait", opt.bus_spin_wait,
                 "link_config::wait of the `bus-spin` path's links on both sides")
    ->check(CLI::IsMember({"block", "spin_then_block", "busy_poll"}));
  app.add_option("--spin-us", opt.spin_us,
                 "link_config::spin: how long spin_then_block polls before it sleeps");
  app.add_option("--chunk-warmup", opt.chunk_warmup,
                 "untimed round trips before every timed chunk (a bus path's link is "
                 "connected afresh for each chunk)");
  app.add_option("--scenarios", opt.scenarios,
                 "CONFIG@PIN list; CONFIG: default (CAF defaults), wake (no 50 us moderate "
                 "sleeps: idle workers wait on their condition variable), tuned (spin: "
                 "--ws-* values); PIN: none, split (driver CPU 0, peer CPU 1), same (both "
                 "CPU 0)")
    ->delimiter(',');
  app.add_option("--threads", opt.threads, "scheduler.max-threads of both actor systems");
  app.add_option("--ws-aggressive-polls", opt.ws_aggressive_polls,
                 "tuned: work-stealing.aggressive-poll-attempts");
  app.add_option("--ws-moderate-sleep-ns", opt.ws_moderate_sleep_ns,
                 "tuned: work-stealing.moderate-sleep-duration in ns (0 = spin)");
  app.add_option("--ws-relaxed-sleep-us", opt.ws_relaxed_sleep_us,
                 "tuned: work-stealing.relaxed-sleep-duration in us");
  app.add_option("--mm-workers", opt.mm_workers,
                 "middleman.workers (BASP deserialization threads); -1: CAF's default");
  app.add_option("--max-throughput", opt.max_throughput,
                 "scheduler.max-throughput (messages an actor or broker handles per resume); "
                 "-1: CAF's default (unlimited)");
  app.add_option("--tput-msgs", opt.tput_msgs, "messages per throughput round");
  app.add_option("--tput-rounds", opt.tput_rounds, "timed throughput rounds per variant");
  app.add_option("--tput-payload", opt.tput_payload, "throughput payload bytes");
  app.add_option("--tput-batch", opt.tput_batch, "bytes per write() of the batched raw writer");
  app.add_option("--tput-paths", opt.tput_paths,
                 "throughput variants: raw (64 KiB writes), raw-1write (one write per frame), "
                 "bus, caf (BASP, TCP only, no flow control)")
    ->delimiter(',')
    ->check(CLI::IsMember({"raw", "raw-1write", "bus", "caf"}));
  app.add_option("--send-queue", opt.send_queue, "link send_queue (messages in flight)");
  app.add_option("--block-timeout-ms", opt.block_timeout_ms,
                 "link block_timeout: how long a publisher waits for a full send queue");
  app.add_flag("--skip-latency", opt.skip_latency, "skip the round-trip part");
  app.add_flag("--skip-throughput", opt.skip_tput, "skip the throughput part");
  app.add_flag("--quick", opt.quick,
               "smoke run (~10 s): sizes 16,4096, 4 rounds, 4,000 / 1,000 round trips, "
               "100,000 messages x 2 rounds, scenario default@none, JSON to "
               "$TMPDIR/mycelium-links-quick.json; options given explicitly win (raw-spin "
               "and bus-spin need pin=split: add --scenarios wake@split)");
  app.add_option("--timer", opt.timer, "tsc (rdtsc calibrated against steady_clock) or steady")
    ->check(CLI::IsMember({"tsc", "steady"}));
  app.add_option("--json", opt.json, "JSON output file");
  // hidden: the far side
  app.add_option("--role", opt.role)->group("");
  app.add_option("--config", opt.config)->group("");
  app.add_option("--dir", opt.dir)->group("");
  app.add_option("--cpu", opt.cpu)->group("");
  CLI11_PARSE(app, argc, argv);
  try {
    if (opt.role == "peer")
      return run_peer(opt);
    if (!opt.role.empty())
      throw bench_error("unknown --role " + opt.role);
    if (opt.rounds == 0 || opt.roundtrips == 0 || opt.roundtrips_large == 0 || opt.tput_msgs == 0
        || opt.tput_rounds == 0 || opt.threads == 0 || opt.tput_payload == 0)
      throw bench_error("counts must be positive");
    for (auto s : opt.sizes)
      if (s > 65536)
        throw bench_error(fmt::format("payload size {} exceeds the schema maximum 65536", s));
    if (opt.quick) { // small counts, unless given explicitly
      auto unset = [&](const char* name) { return app.count(name) == 0; };
      if (unset("--sizes"))
        opt.sizes = {16, 4096};
      if (unset("--rounds"))
        opt.rounds = 4;
      if (unset("--roundtrips"))
        opt.roundtrips = 4000;
      if (unset("--roundtrips-large"))
        opt.roundtrips_large = 1000;
      if (unset("--warmup"))
        opt.warmup = 200;
      if (unset("--tput-msgs"))
        opt.tput_msgs = 100000;
      if (unset("--tput-rounds"))
        opt.tput_rounds = 2;
      if (unset("--scenarios"))
        opt.scenarios = {"default@none"};
      if (unset("--json")) // a smoke run does not touch benchmarks/results/
        opt.json = (std::filesystem::temp_directory_path() / "mycelium-links-quick.json").string();
    }
    return run_driver(opt);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "mycelium-bench-links: {}\n", e.what());
    return 1;
  }
}
