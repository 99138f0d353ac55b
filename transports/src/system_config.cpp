#include "mycelium/transports/system_config.hpp"

#include "mycelium/transports/loop/io_loop.hpp"

namespace mycelium {

system_config::system_config() {
  apply_defaults(*this);
}

void apply_defaults(caf::actor_system_config& cfg) {
  transports::load_io_loop(cfg);
  cfg.set("work-stealing.moderate-poll-attempts", int64_t{0});
}

} // namespace mycelium
