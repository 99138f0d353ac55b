#pragma once

#include <memory>
#include <vector>

#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "mycelium/backtest/crossover.hpp"
#include "mycelium/backtest/market_data.hpp"

namespace mycelium::backtest {

/// Where the portfolio service leaves the outcome of one instance. Written
/// by the portfolio (the instance's only thread), read by the driver after
/// the instance has run to completion.
struct result_slot {
  bool done = false;
  run_result result;
  bool keep_curve = false; ///< store the equity curve and fills too
};

/// The built-in strategy a backtest instance runs (unless a user strategy
/// factory is given).
enum class strategy_kind { ma_crossover, buy_and_hold };

/// Spawns a user-written strategy service into an instance. The service is
/// an ordinary mycelium::service that subscribes to
/// `mycelium::backtest::msg::bars` and answers every batch with one
/// `msg::decisions` holding exactly one action per bar (0 hold, 1 go long,
/// 2 go flat), in bar order; see docs/backtest.md, "Writing a strategy".
/// `ctx.params` holds the run's parameters: "fast", "slow" (int64), "fee",
/// "cash" (double).
using strategy_factory = service_factory;

/// Spawns the four services of one instance -- portfolio, exchange,
/// strategy, replay -- on `bus` in `sys` and returns them. The session starts
/// when `msg::start` is published; replay sends bars in batches of `batch`
/// (results do not depend on it). Services are ordinary mycelium::service
/// actors; nothing is shared with other instances except the read-only
/// `bars`.
std::vector<caf::actor>
spawn_backtest_services(caf::actor_system& sys,
                        const std::shared_ptr<mycelium::bus>& bus,
                        bar_series_ptr bars, strategy_kind strategy,
                        const crossover_params& params,
                        std::shared_ptr<result_slot> slot, size_t batch,
                        const strategy_factory& custom = {});

} // namespace mycelium::backtest
