#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
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
};

/// Runs one backtest instance to completion on the calling thread: a fresh
/// CAF actor system with the thread-less `testing` scheduler, its own bus,
/// the four services, driven until the session ends, then torn down.
/// Deterministic: the same bars and options give the same result on any
/// thread. Thread-safe (instances share nothing but the read-only bars).
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
