#include "mycelium/backtest/instance.hpp"

#include <exception>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "mycelium/backtest/messages.hpp"
#include "mycelium/errc.hpp"

namespace mycelium::backtest {

namespace {

caf::actor_system_config& make_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.console", caf::atom("none"));
  return cfg;
}

} // namespace

struct instance::impl {
  caf::actor_system_config cfg;
  caf::actor_system sys{make_config(cfg)};
  caf::scheduler::test_coordinator& sched
    = static_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  std::shared_ptr<mycelium::bus> bus = std::make_shared<mycelium::bus>("backtest");
  std::shared_ptr<result_slot> slot = std::make_shared<result_slot>();
  std::vector<caf::actor> actors;
  bool ran = false;
};

instance::instance(bar_series_ptr bars, const instance_options& opts)
  : impl_(std::make_unique<impl>()) {
  impl_->slot->keep_curve = opts.keep_curve;
  impl_->actors = spawn_backtest_services(impl_->sys, impl_->bus, std::move(bars),
                                          opts.strategy, opts.params, impl_->slot,
                                          opts.batch, opts.custom_strategy);
  impl_->sched.run(); // every service runs on_start: subscriptions are in place
}

instance::~instance() {
  for (auto& a : impl_->actors)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  impl_->sched.run();
}

caf::expected<run_result> instance::run() {
  if (impl_->ran)
    return make_error(errc::service_failed, "a backtest instance runs only once");
  impl_->ran = true;
  impl_->bus->publish(msg::start{});
  impl_->sched.run(); // the whole session, bar by bar, until nothing is left
  if (!impl_->slot->done)
    return make_error(errc::service_failed,
                      "backtest instance ended without a result (a service "
                      "failed; see the log above)");
  return std::move(impl_->slot->result);
}

caf::expected<run_result> run_instance(const bar_series_ptr& bars,
                                       const instance_options& opts) {
  instance inst{bars, opts};
  return inst.run();
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
