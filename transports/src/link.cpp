#include "mycelium/transports/link.hpp"

#include <algorithm>
#include <set>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <unistd.h>

#include "acceptor.hpp"
#include "connector.hpp"
#include "link_shared.hpp"
#include "mycelium/actors/log.hpp"
#include "mycelium/actors/node.hpp"
#include "mycelium/transports/shm/segment.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "socket_ops.hpp"

namespace mycelium::transports {

// -- link_config ------------------------------------------------------------------

const char* to_string(link_kind x) noexcept {
  switch (x) {
    case link_kind::unix_socket: return "unix";
    case link_kind::tcp: return "tcp";
    case link_kind::shm: return "shm";
  }
  return "<invalid link_kind>";
}

caf::error parse_link_kind(const std::string& text, link_kind& out) {
  if (text == "unix")
    out = link_kind::unix_socket;
  else if (text == "tcp")
    out = link_kind::tcp;
  else if (text == "shm")
    out = link_kind::shm;
  else
    return make_error(errc::config_invalid,
                      "unknown link kind '" + text + "': use unix, tcp or shm");
  return caf::none;
}

const char* to_string(link_state x) noexcept {
  switch (x) {
    case link_state::starting: return "starting";
    case link_state::down: return "down";
    case link_state::up: return "up";
    case link_state::stopped: return "stopped";
  }
  return "<invalid link_state>";
}

std::string link_config::endpoint() const {
  if (kind != link_kind::tcp)
    return std::string{to_string(kind)} + ":" + address;
  return "tcp:" + address + ":" + std::to_string(port);
}

caf::error link_config::validate() const {
  auto bad = [this](const std::string& field, const std::string& why) {
    return make_error(errc::config_invalid,
                      "link '" + name + "': " + field + " " + why);
  };
  if (address.empty())
    return bad("address", "is empty");
  if (name.empty() || name.size() > 250)
    return bad("name", "must have 1 to 250 bytes (the hello carries 'link:' + name, "
                       "at most 255 bytes)");
  if (kind == link_kind::tcp && role == link_role::connect && port == 0)
    return bad("port", "must be set to connect over TCP");
  if (max_payload == 0 || max_payload >= wire::first_control_type_id)
    return bad("max_payload", "must be between 1 and 4294901759");
  if (send_queue == 0)
    return bad("send_queue", "must be at least 1");
  if (heartbeat_interval.count() <= 0)
    return bad("heartbeat_interval", "must be positive");
  if (peer_timeout <= heartbeat_interval)
    return bad("peer_timeout", "must be longer than heartbeat_interval");
  if (reconnect_min.count() <= 0 || reconnect_max < reconnect_min)
    return bad("reconnect_min/max", "must satisfy 0 < reconnect_min <= reconnect_max");
  if (connect_timeout.count() <= 0)
    return bad("connect_timeout", "must be positive");
  if (wait == wait_mode::spin_then_block && spin.count() <= 0)
    return bad("spin", "must be positive with wait spin_then_block");
  if (kind == link_kind::shm) {
    if (!shm::valid_capacity(ring_capacity))
      return bad("ring_capacity", std::to_string(ring_capacity)
                                    + " must be a power of two from 64 to 2^30 bytes");
    auto largest = shm::max_frame_for(ring_capacity);
    if (uint64_t{max_payload} + wire::frame_header::size > largest)
      return bad("max_payload", std::to_string(max_payload)
                                  + " does not fit a ring of "
                                  + std::to_string(ring_capacity)
                                  + " bytes (largest payload "
                                  + std::to_string(largest - wire::frame_header::size)
                                  + "): raise ring_capacity or lower max_payload");
  }
  return caf::none;
}

// -- link ---------------------------------------------------------------------------

detail::channel_source::~channel_source() = default;

struct link::impl {
  std::shared_ptr<detail::link_shared> sh;

  ~impl() {
    stop();
  }

  void stop() {
    std::vector<caf::actor> brokers;
    {
      std::lock_guard<std::mutex> guard{sh->mtx};
      if (sh->state == link_state::stopped)
        return;
      sh->stopping = true;
      for (auto& kv : sh->brokers)
        brokers.push_back(kv.second);
    }
    for (auto& b : brokers)
      caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    brokers.clear();
    std::unique_lock<std::mutex> guard{sh->mtx};
    if (!sh->cv.wait_for(guard, std::chrono::seconds(10),
                         [this] { return sh->brokers.empty(); }))
      log(log_level::error, sh->self.node + "/link:" + sh->cfg.name,
          "brokers did not stop within 10 s");
    sh->state = link_state::stopped;
    sh->peers.clear();
    sh->cv.notify_all();
  }
};

caf::expected<link> link::start(caf::actor_system& sys,
                                 std::shared_ptr<mycelium::bus> b,
                                 const schema_descriptor& schema,
                                 link_config cfg) {
  if (auto err = cfg.validate())
    return err;
  if (!sys.has_middleman())
    return make_error(errc::config_invalid,
                      "link '" + cfg.name
                        + "' needs CAF's middleman: call "
                          "cfg.load<caf::io::middleman>() before creating the "
                          "actor system");
  if (b->node_name().size() > 255)
    return make_error(errc::config_invalid,
                      "link '" + cfg.name + "': node name '"
                        + b->node_name().substr(0, 32) + "...' has "
                        + std::to_string(b->node_name().size())
                        + " bytes; the hello carries at most 255");
  if (cfg.kind == link_kind::shm) {
    if (io_loop::of(sys) == nullptr)
      return make_error(errc::config_invalid,
                        "link '" + cfg.name
                          + "' of kind shm needs CAF's middleman with Mycelium's "
                            "I/O loop, which polls the rings: call "
                            "mycelium::transports::load_io_loop(cfg) (that is, "
                            "cfg.load<caf::io::middleman, io_loop>()) "
                            "before creating the actor system");
    // Segments of crashed processes would otherwise stay in /dev/shm.
    for (auto& name : shm::remove_stale_segments())
      log(log_level::info, b->node_name() + "/link:" + cfg.name,
          "removed stale shared-memory segment /dev/shm/" + name);
  }
  auto sh = std::make_shared<detail::link_shared>();
  sh->cfg = std::move(cfg);
  sh->bus = std::move(b);
  sh->schema = schema;
  sh->self = link_identity{sh->bus->node_name(), "link:" + sh->cfg.name,
                           static_cast<uint32_t>(::getpid())};
  auto& c = sh->cfg;
  caf::actor broker;
  if (c.role == link_role::listen) {
    int fd = -1;
    if (c.kind != link_kind::tcp) {
      auto r = detail::listen_unix(c.address);
      if (!r)
        return make_error(static_cast<errc>(r.error().code()),
                          "link '" + c.name + "': " + render(r.error()));
      fd = *r;
    } else {
      auto r = detail::listen_tcp(c.address, c.port);
      if (!r)
        return make_error(static_cast<errc>(r.error().code()),
                          "link '" + c.name + "': " + render(r.error()));
      fd = r->first;
      sh->port = r->second;
    }
    sh->state = link_state::down;
    std::lock_guard<std::mutex> guard{sh->mtx};
    broker = detail::spawn_acceptor(sys, fd, sh);
    sh->brokers.emplace(broker.id(), broker);
  } else {
    std::lock_guard<std::mutex> guard{sh->mtx};
    broker = detail::spawn_connector(sys, sh);
    sh->brokers.emplace(broker.id(), broker);
  }
  log(log_level::info, sh->self.node + "/link:" + c.name,
      std::string{c.role == link_role::listen ? "listening on " : "connecting to "}
        + (c.kind == link_kind::tcp && c.role == link_role::listen
             ? "tcp:" + c.address + ":" + std::to_string(sh->port)
             : c.endpoint()));
  link result;
  result.impl_ = std::make_shared<impl>();
  result.impl_->sh = std::move(sh);
  return result;
}

caf::expected<link> link::start(node& n, const schema_descriptor& schema,
                                link_config cfg) {
  return start(n.system(), n.bus_ptr(), schema, std::move(cfg));
}

link_stats link::stats() const {
  link_stats r;
  if (!impl_)
    return r;
  auto& sh = *impl_->sh;
  auto rd = [](const std::atomic<uint64_t>& x) {
    return x.load(std::memory_order_relaxed);
  };
  r.name = sh.cfg.name;
  r.frames_received = rd(sh.frames_received);
  r.bytes_received = rd(sh.bytes_received);
  r.dropped_link_down = rd(sh.dropped_link_down);
  r.frames_too_large = rd(sh.frames_too_large);
  r.bad_frames = rd(sh.bad_frames);
  r.connects = rd(sh.connects);
  r.disconnects = rd(sh.disconnects);
  r.goodbyes = rd(sh.goodbyes);
  r.connect_failures = rd(sh.connect_failures);
  r.refusals_sent = rd(sh.refusals_sent);
  r.refusals_received = rd(sh.refusals_received);
  r.socket_writes = rd(sh.socket_writes);
  r.scribe_writes = rd(sh.scribe_writes);
  r.polled_reads = rd(sh.polled_reads);
  std::lock_guard<std::mutex> guard{sh.mtx};
  // Under the lock: a retiring channel moves its counts in atomically.
  r.frames_sent = rd(sh.frames_sent);
  r.bytes_sent = rd(sh.bytes_sent);
  r.state = sh.state;
  r.peers = sh.peers.size();
  r.peer = sh.peer;
  r.port = sh.port;
  r.last_error = sh.last_error;
  std::set<uint32_t> interest;
  for (auto& kv : sh.peers) {
    interest.insert(kv.second.interest.begin(), kv.second.interest.end());
    r.peer_list.push_back(kv.second);
  }
  r.peer_interest.assign(interest.begin(), interest.end());
  r.dropped_overflow = sh.retired_dropped;
  r.back_pressured = sh.retired_back_pressured;
  r.overflow_disconnects = sh.retired_disconnects;
  auto add_overflow = [&r](const overflow_guard& o) {
    r.dropped_overflow += o.dropped();
    r.back_pressured += o.back_pressured();
    r.overflow_disconnects += o.disconnects();
  };
  for (auto& g : sh.gates) {
    add_overflow(g->overflow());
    r.queued += g->depth();
  }
  for (auto& kv : sh.channels)
    if (auto c = kv.second.lock()) {
      add_overflow(c->overflow());
      r.queued += c->backlog();
      r.frames_sent += c->frames_sent();
      r.bytes_sent += c->bytes_sent();
    }
  return r;
}

bool link::await(const std::function<bool(const link_stats&)>& pred,
                 std::chrono::milliseconds timeout) const {
  if (!impl_)
    return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred(stats()))
      return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return false;
    // State changes notify; counters do not, hence the 1 ms re-check.
    std::unique_lock<std::mutex> guard{impl_->sh->mtx};
    impl_->sh->cv.wait_for(guard, std::min<std::chrono::steady_clock::duration>(
                                    deadline - now, std::chrono::milliseconds(1)));
  }
}

bool link::await_up(std::chrono::milliseconds timeout) const {
  return await([](const link_stats& s) { return s.state == link_state::up; },
               timeout);
}

bool link::await_peer_interest(uint32_t type_id,
                               std::chrono::milliseconds timeout) const {
  return await(
    [type_id](const link_stats& s) {
      return std::find(s.peer_interest.begin(), s.peer_interest.end(), type_id)
             != s.peer_interest.end();
    },
    timeout);
}

uint16_t link::port() const {
  if (!impl_)
    return 0;
  std::lock_guard<std::mutex> guard{impl_->sh->mtx};
  return impl_->sh->port;
}

const link_config& link::config() const {
  return impl_->sh->cfg;
}

void link::stop() {
  if (impl_)
    impl_->stop();
}

} // namespace mycelium::transports
