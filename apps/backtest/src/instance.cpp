#include "mycelium/backtest/instance.hpp"

#include <exception>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "backtest.hpp"
#include "mycelium/errc.hpp"

namespace mycelium::backtest {

caf::expected<run_result> run_instance(const bar_series_ptr& bars,
                                       const instance_options& opts) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{cfg};
  auto& sched = static_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto bus = std::make_shared<mycelium::bus>("backtest");
  auto slot = std::make_shared<result_slot>();
  slot->keep_curve = opts.keep_curve;
  auto actors = spawn_backtest_services(sys, bus, bars, opts.strategy,
                                        opts.params, slot);
  sched.run(); // every service runs on_start: subscriptions are in place
  bus->publish(msg::start{});
  sched.run(); // the whole session, bar by bar, until nothing is left to do
  for (auto& a : actors)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  sched.run();
  if (!slot->done)
    return make_error(errc::service_failed,
                      "backtest instance ended without a result (a service "
                      "failed; see the log above)");
  return std::move(slot->result);
}

void parallel_for(size_t count, size_t threads,
                  const std::function<void(size_t)>& job,
                  std::atomic<size_t>* done) {
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, std::max<size_t>(count, 1));
  std::atomic<size_t> next{0};
  std::exception_ptr first_error;
  std::mutex error_mtx;
  auto worker = [&] {
    for (;;) {
      auto i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= count)
        return;
      try {
        job(i);
      } catch (...) {
        std::lock_guard<std::mutex> guard{error_mtx};
        if (!first_error)
          first_error = std::current_exception();
        next.store(count); // stop handing out work
      }
      if (done)
        done->fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (auto& t : pool)
    t.join();
  if (first_error)
    std::rethrow_exception(first_error);
}

} // namespace mycelium::backtest
