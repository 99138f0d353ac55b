#pragma once

#include <cstdint>

#include "mycelium/bus/bus.hpp"

namespace mycelium {

/// A publisher's view of the bus's routing: the current `routing_table`
/// snapshot, re-read only when `bus::version()` changed (one acquire load per
/// use otherwise), and the route of the last type asked for, so that a
/// stream of one type costs no hash lookup per message. Services and links
/// that deliver keep one each.
///
/// Thread-safety: none; owned by one thread or actor at a time. The bus must
/// outlive it.
class route_cache {
public:
  explicit route_cache(const mycelium::bus* b) noexcept : bus_(b) {
  }

  /// The route of `type_id` in the current snapshot (nullptr: the type was
  /// never seen when looked up). Valid until the next call.
  const routing_table::route* route(uint32_t type_id) {
    refresh();
    if (type_ != type_id || route_version_ != version_) {
      route_ = mycelium::bus::lookup(*table_, type_id);
      type_ = type_id;
      route_version_ = version_;
    }
    return route_;
  }

  /// The current snapshot.
  const routing_table& table() {
    refresh();
    return *table_;
  }

  /// Drops the snapshot (breaks a reference cycle through the table on
  /// exit); the next use takes a fresh one.
  void reset() noexcept {
    table_.reset();
    version_ = 0; // the bus starts at 1
    route_ = nullptr;
    route_version_ = 0;
  }

private:
  void refresh() {
    auto v = bus_->version();
    if (v != version_) {
      table_ = bus_->snapshot();
      version_ = v;
    }
  }

  const mycelium::bus* bus_;
  routing_table_ptr table_;
  uint64_t version_ = 0;
  const routing_table::route* route_ = nullptr; ///< points into *table_
  uint32_t type_ = 0;
  uint64_t route_version_ = 0; ///< `version_` when `route_` was looked up
};

} // namespace mycelium
