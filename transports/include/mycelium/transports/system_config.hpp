#pragma once

#include <caf/actor_system_config.hpp>

namespace mycelium {

/// The actor-system configuration a Mycelium node starts from, so that a
/// node with default settings reaches the documented latencies without
/// tuning (docs/configuration.md lists each setting and its measured
/// effect):
///
/// - CAF's middleman with the node's I/O loop (`transports::io_loop`), which
///   runs loop-placed services and polls shared-memory rings;
/// - `work-stealing.moderate-poll-attempts = 0`: CAF's default lets an idle
///   worker sleep 50 us between polls, and new work does not wake it (about
///   250 us per TCP round trip instead of 84 us, measured); with 0 an idle
///   worker waits on its condition variable, which every enqueue notifies.
///
/// Settings given later (a config file, the command line, `set`) win.
///
/// Thread-safety: as caf::actor_system_config (configure before use).
class system_config : public caf::actor_system_config {
public:
  system_config();
};

/// Applies the settings of `system_config` to another configuration (for
/// programs that derive their own config class from CAF's).
void apply_defaults(caf::actor_system_config& cfg);

} // namespace mycelium
