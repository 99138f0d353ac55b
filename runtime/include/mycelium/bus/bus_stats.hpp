#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace mycelium {

/// Counters of one topic (message type) on one bus, as read by `bus::topics`.
/// `dropped` counts messages handed to a subscriber that terminated before it
/// handled them; `enqueued == delivered + dropped + in flight`.
struct topic_stats {
  uint32_t type_id = 0;
  std::string type_name;
  size_t subscribers = 0;
  uint64_t published = 0;     ///< publish() calls
  uint64_t no_subscriber = 0; ///< publish() calls that found no subscriber
  uint64_t enqueued = 0;      ///< copies handed to subscriber mailboxes
  uint64_t delivered = 0;     ///< handler invocations
  uint64_t dropped = 0;       ///< lost with a terminated subscriber
  uint64_t refused = 0;       ///< copies refused by a full link send queue
};

/// Counters of one service name on one bus, kept across restarts.
struct service_stats {
  std::string name;
  uint64_t published = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  uint64_t handler_errors = 0;
  uint64_t restarts = 0;
  /// Loop placement: handlers that ran over the service's handler budget.
  uint64_t slow_handlers = 0;
};

namespace detail {

/// Live counters behind `service_stats`; shared by every incarnation of a
/// service. Single-writer fields use relaxed load+store; others fetch_add.
struct service_counters {
  explicit service_counters(std::string n) : name(std::move(n)) {}
  std::string name;
  std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> handler_errors{0};
  std::atomic<uint64_t> restarts{0};
  std::atomic<uint64_t> slow_handlers{0};
  std::atomic<uint64_t> retired_delivered{0};
  std::atomic<uint64_t> retired_dropped{0};
};

/// Live counters behind `topic_stats`.
struct topic_counters {
  topic_counters(uint32_t id, std::string n) : type_id(id), name(std::move(n)) {}
  uint32_t type_id;
  std::string name;
  alignas(64) std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> no_subscriber{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> retired_enqueued{0};
  std::atomic<uint64_t> retired_delivered{0};
  std::atomic<uint64_t> retired_dropped{0};
};

/// Bumps a counter that only one thread writes (no locked instruction).
inline void bump(std::atomic<uint64_t>& x, uint64_t n = 1) noexcept {
  x.store(x.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

} // namespace detail

} // namespace mycelium
