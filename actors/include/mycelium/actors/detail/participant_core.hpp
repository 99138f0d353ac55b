#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/message_handler.hpp>

#include "mycelium/actors/service_context.hpp"
#include "mycelium/bus/bus.hpp"
#include "mycelium/bus/route_cache.hpp"

namespace mycelium {

/// Atom a supervisor sends a freshly spawned service; the reply arrives once
/// `on_start` has run, so callers can wait for subscriptions to be in place.
using started_atom = caf::atom_constant<caf::atom("mstarted")>;

/// A loop service sends itself this after a handler it ran directly (not
/// from its mailbox) threw: handling it rethrows inside CAF's resume, so the
/// failure takes the usual path (exception handler, supervisor restart). The
/// same atom with no pending failure only wakes the actor (e.g. to finish a
/// `quit` requested by a direct handler).
using direct_wake_atom = caf::atom_constant<caf::atom("mdirwake")>;

} // namespace mycelium

namespace mycelium::detail {

/// The state of one bus participant, without templates: its context, its
/// counters, its `route_cache`, and the handlers it registered (with their
/// subscriptions). `mixin::bus_participant` puts the typed API on top.
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
  /// seen); see `route_cache`.
  const routing_table::route* route(uint32_t type_id) { return routes_.route(type_id); }

  /// The current routing snapshot.
  const routing_table& routes() { return routes_.table(); }

  /// Calls `*value` directly, outside the mailbox.
  using direct_handler = std::function<void(const void* value)>;

  /// Registers handler `h` for `type_id`, replacing one of the same kind
  /// (subscription or responder); `direct`, when set, handles the same
  /// messages without the mailbox (see `run_direct`). Returns whether the
  /// behavior changed after start (the caller then calls
  /// `become(behavior())`).
  bool add_handler(uint32_t type_id, subscription_ptr sub, caf::message_handler h,
                   direct_handler direct = {});

  /// Runs the direct handler of `type_id` for `*value` now, unless one of
  /// this participant's handlers is already running (no re-entry), it has
  /// not started, a direct handler failed, or there is none: then returns
  /// false and nothing happened. A handler that throws is caught; the
  /// caller must then send `direct_wake_atom` (see `failed_directly`).
  bool run_direct(uint32_t type_id, const void* value);

  /// Whether a direct handler threw and the failure waits to be rethrown.
  bool failed_directly() const noexcept { return failure_ != nullptr; }

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

  /// The clock handlers are timed with: CLOCK_MONOTONIC_COARSE, a few ns
  /// per read where steady_clock costs ~25 ns (twice per handler on the
  /// hot path), at the kernel tick's resolution (1-4 ms): enough for a
  /// budget of milliseconds.
  static std::chrono::nanoseconds budget_clock() noexcept;

  /// A handler of `type_name` that began at `start` (`budget_clock`)
  /// returned: counts and logs it when it ran over the budget (at most one
  /// log line per second, saying how many were not logged).
  void check_budget(std::chrono::nanoseconds start, const char* type_name) {
    auto took = budget_clock() - start;
    if (took > ctx_.handler_budget)
      over_budget(took, type_name);
  }

private:
  void over_budget(std::chrono::nanoseconds took, const char* type_name);

  struct handler_entry {
    uint32_t type_id;
    subscription_ptr sub; ///< null for a responder
    caf::message_handler handler;
    direct_handler direct; ///< loop placement: the same handler, unboxed
  };

  service_context ctx_;
  std::shared_ptr<service_counters> counters_;
  route_cache routes_;
  std::vector<handler_entry> handlers_;
  bool started_ = false;
  bool in_direct_ = false; ///< a direct handler runs (no re-entry)
  std::exception_ptr failure_; ///< thrown by a direct handler, not rethrown yet
  std::chrono::steady_clock::time_point last_budget_log_{};
  uint64_t unlogged_overruns_ = 0;
};

} // namespace mycelium::detail
