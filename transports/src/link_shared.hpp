#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/io/broker.hpp>

#include "mycelium/bus/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/transports/link_config.hpp"
#include "mycelium/transports/link_protocol.hpp"
#include "mycelium/transports/link_stats.hpp"
#include "mycelium/transports/send_gate.hpp"

namespace mycelium::transports::detail {

/// A data path that publishers write into from their own threads (a
/// shared-memory link's outgoing ring): it keeps its own send counters, so
/// that publishers do not contend on the link's, and holds frames the peer
/// has not taken yet (`link_stats::queued`). `link_shared::retire` moves its
/// counters into the link's when it closes.
/// Thread-safety: every member is called from any thread.
class channel_source {
public:
  virtual ~channel_source();
  virtual uint64_t backlog() const noexcept = 0;
  virtual uint64_t frames_sent() const noexcept = 0;
  virtual uint64_t bytes_sent() const noexcept = 0;
  virtual const overflow_guard& overflow() const noexcept = 0;
};

/// State shared by a link's handle and its brokers: configuration, counters
/// and the published state. Counters are relaxed atomics (brokers write,
/// `stats()` reads); everything else is guarded by `mtx`.
struct link_shared {
  link_config cfg;
  std::shared_ptr<mycelium::bus> bus;
  schema_descriptor schema;
  link_identity self;

  std::atomic<uint64_t> frames_sent{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> frames_received{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> dropped_link_down{0};
  std::atomic<uint64_t> frames_too_large{0};
  std::atomic<uint64_t> bad_frames{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> disconnects{0};
  std::atomic<uint64_t> goodbyes{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> refusals_sent{0};
  std::atomic<uint64_t> refusals_received{0};
  std::atomic<uint64_t> socket_writes{0};
  std::atomic<uint64_t> scribe_writes{0};
  std::atomic<uint64_t> polled_reads{0};

  mutable std::mutex mtx;
  std::condition_variable cv;
  link_state state = link_state::starting;
  std::string peer;
  std::string last_error;
  uint16_t port = 0;
  bool stopping = false;
  /// Established connections (by broker id) and their peers' interest.
  std::map<caf::actor_id, peer_info> peers;
  /// Gates of live connections, and the counters of retired ones (so a
  /// listener with many short-lived peers does not keep every gate).
  std::vector<std::shared_ptr<send_gate>> gates;
  uint64_t retired_dropped = 0;
  uint64_t retired_back_pressured = 0;
  uint64_t retired_disconnects = 0;

  /// Moves `g`'s counters into the retired ones; call with `mtx` held.
  void retire_locked(const std::shared_ptr<send_gate>& g) {
    auto i = std::find(gates.begin(), gates.end(), g);
    if (i == gates.end())
      return;
    retire_overflow_locked(g->overflow());
    gates.erase(i);
  }

  void retire_overflow_locked(const overflow_guard& o) {
    retired_dropped += o.dropped();
    retired_back_pressured += o.back_pressured();
    retired_disconnects += o.disconnects();
  }
  /// Outgoing rings of live shared-memory connections (socket links count
  /// their backlog in their gates and their frames here directly).
  std::map<const channel_source*, std::weak_ptr<const channel_source>> channels;

  /// Adds the counters of `c` to the link's and forgets it (idempotent).
  void retire(const channel_source* c) {
    std::lock_guard<std::mutex> guard{mtx};
    if (channels.erase(c) == 0)
      return;
    frames_sent.fetch_add(c->frames_sent(), std::memory_order_relaxed);
    bytes_sent.fetch_add(c->bytes_sent(), std::memory_order_relaxed);
    retire_overflow_locked(c->overflow());
  }
  /// Live brokers (acceptor and connections), for stop().
  std::map<caf::actor_id, caf::actor> brokers;

  /// "NODE/link:NAME", the source of this link's log lines.
  std::string who() const { return self.node + "/link:" + cfg.name; }

  /// Whether `link::stop` began (locks `mtx`).
  bool is_stopping() const {
    std::lock_guard<std::mutex> guard{mtx};
    return stopping;
  }

  /// Records an error text (and logs nothing: callers log).
  void set_error(const std::string& text) {
    std::lock_guard<std::mutex> guard{mtx};
    last_error = text;
    cv.notify_all();
  }

  void recompute_state_locked() {
    if (state == link_state::stopped)
      return;
    state = peers.empty() ? link_state::down : link_state::up;
  }
};

} // namespace mycelium::transports::detail
