#pragma once

#include <cstdint>
#include <vector>

#include "mycelium/backtest/market_data.hpp"
#include "mycelium/backtest/metrics.hpp"

namespace mycelium::backtest {

/// The moving-average crossover and its fill model, documented in
/// docs/backtest.md:
/// - at the close of bar t (t >= max(fast, slow) - 1) compare the simple
///   moving averages of the last `fast` and `slow` closes; fast > slow means
///   "long", else "flat" (equal is flat). The state starts flat. Each SMA is
///   recomputed every bar: the window's closes summed oldest first, in
///   double, divided by the window length (the actor strategy does the same
///   operations in the same order, so results are bit-identical); fast or
///   slow 0 means no signal at all;
/// - a change of the wanted state sends a market order, filled at the OPEN of
///   bar t+1 (no fill for a signal on the last bar);
/// - long = buy floor((cash - fee) / open) whole units (no order if that is
///   0); flat = sell every unit held; each fill pays `fee` from cash;
/// - equity at each close = cash + units * close.
struct crossover_params {
  size_t fast = 10;
  size_t slow = 30;
  double fee = 1.0;
  double cash = 100000.0;
};

/// What a run produces: metrics, the equity curve and every fill.
struct fill_record {
  size_t bar_index = 0; ///< the bar whose open filled it
  bool buy = true;
  int64_t units = 0;
  double price = 0;
};

struct run_result {
  run_metrics metrics;
  std::vector<double> equity;
  std::vector<fill_record> fills;
};

/// The same strategy as a plain C++ loop, no actors: the reference the
/// actor version is tested against and the benchmark's baseline.
run_result run_crossover_plain(const bar_series& bars, const crossover_params& p);

/// Buy-and-hold under the crossover's fill model: decide "long" at the first
/// close, buy whole units at the second bar's open, hold. Returns final
/// equity - initial cash, the position marked at the last close (no exit
/// fee); 0 with fewer than 2 bars or if not one unit is affordable. The
/// actor instance's P&L equals it exactly (tested).
double buy_and_hold_pnl(const bar_series& bars, double cash, double fee);

} // namespace mycelium::backtest
