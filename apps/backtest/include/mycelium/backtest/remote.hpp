#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

#include "mycelium/backtest/crossover.hpp"
#include "mycelium/backtest/market_data.hpp"
#include "mycelium/backtest/services.hpp"

/// Distributed backtests over CAF remote actors (BASP): `mycelium-backtest
/// worker` publishes a worker actor on a port; a driver given
/// `--workers host:port,...` sends each worker the data once, then chunks of
/// parameter sets, and gathers the metrics. Results are the same as a local
/// run because every instance is deterministic and results are placed by
/// index.
namespace mycelium::backtest {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bar& x) {
  return f(caf::meta::type_name("mycelium.backtest.bar"), x.day, x.open, x.high,
           x.low, x.close, x.volume);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, crossover_params& x) {
  return f(caf::meta::type_name("mycelium.backtest.crossover_params"), x.fast,
           x.slow, x.fee, x.cash);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_metrics& x) {
  return f(caf::meta::type_name("mycelium.backtest.run_metrics"),
           x.final_equity, x.total_return, x.sharpe, x.max_drawdown, x.trades);
}

/// Registers the types above with CAF; both ends must call it.
void add_remote_types(caf::actor_system_config& cfg);

/// Runs `sets` on the given workers; fills `results` by index and bumps
/// `done` per finished instance. With a `secret`, first proves to each
/// worker that it knows the same one (HMAC-SHA256 over a fresh nonce of the
/// worker). Errors name the worker (unreachable, refused, died, failed) and
/// say what to do.
caf::error run_remote(const std::vector<std::string>& workers,
                      const bar_series_ptr& bars, strategy_kind kind,
                      const std::vector<crossover_params>& sets,
                      std::vector<run_metrics>& results,
                      std::atomic<size_t>& done, const std::string& secret = {});

/// Serves as a worker until the process is stopped: publishes the worker
/// actor on `host:port` (port 0 picks a free one), prints
/// "mycelium-backtest worker listening on HOST:PORT" and blocks. With a
/// `secret`, only drivers that prove they know it may use the worker (BASP
/// itself is not encrypted: the secret authenticates, it does not hide the
/// data). Refuses to listen on an address other than loopback without a
/// secret. Returns an error when the port cannot be opened.
caf::error serve_worker(const std::string& host, uint16_t port, size_t threads,
                        const std::string& secret = {});

} // namespace mycelium::backtest
