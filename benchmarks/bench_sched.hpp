#pragma once

// What CAF scheduler settings a benchmark actually ran with (read back from
// the actor system, defaults included), for its report.

#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/defaults.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

namespace mycelium::bench {

struct sched_info {
  std::string policy;
  size_t max_threads = 0;
  size_t workers = 0;
  size_t mm_workers = 0;
  int64_t max_throughput = -1; // -1: unlimited
  int64_t aggressive_poll_attempts = 0, aggressive_steal_interval = 0;
  int64_t moderate_poll_attempts = 0, moderate_steal_interval = 0;
  int64_t moderate_sleep_ns = 0;
  int64_t relaxed_steal_interval = 0;
  int64_t relaxed_sleep_ns = 0;
};

inline sched_info read_sched(caf::actor_system& sys) {
  namespace d = caf::defaults;
  auto& cfg = sys.config();
  sched_info s;
  s.policy = caf::to_string(caf::get_or(cfg, "scheduler.policy", d::scheduler::policy));
  s.max_threads = caf::get_or(cfg, "scheduler.max-threads", d::scheduler::max_threads);
  s.workers = sys.scheduler().num_workers();
  s.mm_workers = caf::get_or(cfg, "middleman.workers", d::middleman::workers);
  auto mt = caf::get_or(cfg, "scheduler.max-throughput", d::scheduler::max_throughput);
  s.max_throughput = mt > static_cast<size_t>(INT64_MAX) ? -1 : static_cast<int64_t>(mt);
  auto geti = [&](const char* k, size_t def) {
    return static_cast<int64_t>(caf::get_or(cfg, k, def));
  };
  auto getd = [&](const char* k, caf::timespan def) {
    return static_cast<int64_t>(caf::get_or(cfg, k, def).count());
  };
  namespace ws = d::work_stealing;
  s.aggressive_poll_attempts = geti("work-stealing.aggressive-poll-attempts", ws::aggressive_poll_attempts);
  s.aggressive_steal_interval = geti("work-stealing.aggressive-steal-interval", ws::aggressive_steal_interval);
  s.moderate_poll_attempts = geti("work-stealing.moderate-poll-attempts", ws::moderate_poll_attempts);
  s.moderate_steal_interval = geti("work-stealing.moderate-steal-interval", ws::moderate_steal_interval);
  s.moderate_sleep_ns = getd("work-stealing.moderate-sleep-duration", ws::moderate_sleep_duration);
  s.relaxed_steal_interval = geti("work-stealing.relaxed-steal-interval", ws::relaxed_steal_interval);
  s.relaxed_sleep_ns = getd("work-stealing.relaxed-sleep-duration", ws::relaxed_sleep_duration);
  return s;
}

} // namespace mycelium::bench
