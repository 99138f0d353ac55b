#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include <caf/expected.hpp>

#include "mycelium/backtest/crossover.hpp"
#include "mycelium/backtest/market_data.hpp"
#include "mycelium/backtest/services.hpp"

namespace mycelium::backtest {

struct instance_options {
  strategy_kind strategy = strategy_kind::ma_crossover;
  crossover_params params;
  bool keep_curve = false; ///< also return the equity curve and fills
  size_t batch = 64;       ///< bars per message; results never depend on it
  strategy_factory custom_strategy = {}; ///< if set, replaces `strategy`
};

/// One backtest instance: a fresh CAF actor system with the thread-less
/// `testing` scheduler, its own bus and the four services. Constructing it
/// spawns and initialises the services; `run` drives the session to its end
/// on the calling thread; the destructor stops the services. Not
/// thread-safe, but instances are independent: any number may live on any
/// threads at once.
class instance {
public:
  instance(bar_series_ptr bars, const instance_options& opts);
  ~instance();
  instance(const instance&) = delete;
  instance& operator=(const instance&) = delete;

  /// Runs the whole session once. Deterministic.
  caf::expected<run_result> run();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Creates an instance, runs it, tears it down.
caf::expected<run_result> run_instance(const bar_series_ptr& bars,
                                       const instance_options& opts);

/// Runs `count` jobs on `threads` worker threads (0 = all cores): each
/// thread takes the next index and calls `job(index)`. `done` counts
/// finished jobs for progress reporting. Returns when all are done; the
/// first exception a job throws is rethrown.
void parallel_for(size_t count, size_t threads,
                  const std::function<void(size_t)>& job,
                  std::atomic<size_t>* done = nullptr);

} // namespace mycelium::backtest
