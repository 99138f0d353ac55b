#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/message_handler.hpp>

#include "mycelium/actors/service_context.hpp"
#include "mycelium/bus/bus.hpp"

namespace mycelium {

/// Atom a supervisor sends a freshly spawned service; the reply arrives once
/// `on_start` has run, so callers can wait for subscriptions to be in place.
using started_atom = caf::atom_constant<caf::atom("mstarted")>;

} // namespace mycelium

namespace mycelium::detail {

/// The state of one bus participant, without templates: its context, its
/// counters, the routing snapshot with a one-entry route cache, and the
/// handlers it registered (with their subscriptions). `mixin::bus_participant`
/// puts the typed API on top.
///
/// Thread-safety: none; owned by one actor and touched only from its
/// handlers (one at a time).
class participant_core {
public:
  explicit participant_core(service_context ctx);
  ~participant_core();
  participant_core(const participant_core&) = delete;
  participant_core& operator=(const participant_core&) = delete;

  const service_context& context() const noexcept { return ctx_; }
  mycelium::bus& bus() const noexcept { return *ctx_.bus; }
  service_counters& counters() noexcept { return *counters_; }

  /// The route of `type_id` in the current routing snapshot (nullptr: never
  /// seen). Re-reads the snapshot only when the bus's version changed; a
  /// one-entry cache, since services mostly publish one type at a time.
  const routing_table::route* route(uint32_t type_id) {
    refresh();
    if (cached_type_ != type_id || cached_version_ != routes_version_) {
      cached_route_ = mycelium::bus::lookup(*routes_, type_id);
      cached_type_ = type_id;
      cached_version_ = routes_version_;
    }
    return cached_route_;
  }

  /// The current routing snapshot.
  const routing_table& routes() {
    refresh();
    return *routes_;
  }

  /// Registers handler `h` for `type_id`, replacing one of the same kind
  /// (subscription or responder). Returns whether the behavior changed
  /// after start (the caller then calls `become(behavior())`).
  bool add_handler(uint32_t type_id, subscription_ptr sub, caf::message_handler h);

  /// Ends the subscription to `type_id`; same return value.
  bool remove_handler(uint32_t type_id);

  /// Every handler (subscriptions first, the hot path), then `started`.
  caf::behavior behavior() const;

  void mark_started() noexcept { started_ = true; }
  bool started() const noexcept { return started_; }

  /// Unsubscribes everything and drops the snapshot (on exit: breaks the
  /// reference cycle through the routing table).
  void leave();

  /// Whether handlers are timed against the budget (loop placement).
  bool timed() const noexcept { return ctx_.where == placement::loop; }

  /// A handler of `type_name` that began at `start` returned: counts and
  /// logs it when it ran over the budget (at most one log line per second,
  /// saying how many were not logged).
  void check_budget(std::chrono::steady_clock::time_point start,
                    const char* type_name) {
    auto took = std::chrono::steady_clock::now() - start;
    if (took > ctx_.handler_budget)
      over_budget(took, type_name);
  }

private:
  void refresh() {
    auto v = ctx_.bus->version();
    if (v != routes_version_) {
      routes_ = ctx_.bus->snapshot();
      routes_version_ = v;
    }
  }
  void over_budget(std::chrono::steady_clock::duration took, const char* type_name);

  struct handler_entry {
    uint32_t type_id;
    subscription_ptr sub; ///< null for a responder
    caf::message_handler handler;
  };

  service_context ctx_;
  std::shared_ptr<service_counters> counters_;
  routing_table_ptr routes_;
  uint64_t routes_version_ = 0;
  const routing_table::route* cached_route_ = nullptr; ///< points into *routes_
  uint32_t cached_type_ = 0;
  uint64_t cached_version_ = 0;
  std::vector<handler_entry> handlers_;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_budget_log_{};
  uint64_t unlogged_overruns_ = 0;
};

} // namespace mycelium::detail
