#include "mycelium/backtest/crossover.hpp"

#include <algorithm>
#include <cmath>

namespace mycelium::backtest {

namespace {

/// Whole units that `cash` buys at `price` after paying `fee`, or 0.
int64_t units_affordable(double cash, double fee, double price) {
  if (!(price > 0))
    return 0;
  const double n = std::floor((cash - fee) / price);
  // Clamped so that absurd cash/price ratios cannot overflow the cast.
  return n >= 1 ? static_cast<int64_t>(std::min(n, 1e18)) : 0;
}

} // namespace

run_result run_crossover_plain(const bar_series& bars,
                               const crossover_params& p) {
  run_result res;
  const size_t n = bars.size();
  res.equity.reserve(n);
  double cash = p.cash;
  int64_t units = 0;
  bool want_long = false;   // the wanted state, starts flat
  bool order_pending = false;
  double fast_sum = 0;      // running sums of the last `fast` / `slow` closes
  double slow_sum = 0;
  const bool active = p.fast > 0 && p.slow > 0;
  const size_t warmup = std::max(p.fast, p.slow); // bars before a signal
  for (size_t t = 0; t < n; ++t) {
    const bar& b = bars[t];
    // 1. The open: fill the order sent at the previous close.
    if (order_pending) {
      order_pending = false;
      if (want_long) {
        if (auto q = units_affordable(cash, p.fee, b.open); q > 0) {
          cash -= static_cast<double>(q) * b.open + p.fee;
          units += q;
          res.fills.push_back({t, true, q, b.open});
        }
      } else if (units > 0) {
        cash += static_cast<double>(units) * b.open - p.fee;
        res.fills.push_back({t, false, units, b.open});
        units = 0;
      }
    }
    // 2. The close: mark to market.
    res.equity.push_back(cash + static_cast<double>(units) * b.close);
    // 3. The signal.
    if (!active)
      continue;
    fast_sum += b.close;
    slow_sum += b.close;
    if (t >= p.fast)
      fast_sum -= bars[t - p.fast].close;
    if (t >= p.slow)
      slow_sum -= bars[t - p.slow].close;
    if (t + 1 < warmup)
      continue;
    const bool wanted = fast_sum / static_cast<double>(p.fast)
                        > slow_sum / static_cast<double>(p.slow);
    if (wanted != want_long) {
      want_long = wanted;
      // A market order for the next open; none after the last bar.
      order_pending = t + 1 < n;
    }
  }
  res.metrics = compute_metrics(p.cash, res.equity, res.fills.size());
  return res;
}

double buy_and_hold_pnl(const bar_series& bars, double cash, double fee) {
  if (bars.empty())
    return 0;
  const auto q = units_affordable(cash, fee, bars.front().open);
  if (q == 0)
    return 0;
  const double rest = cash - static_cast<double>(q) * bars.front().open - fee;
  const double final_equity = rest + static_cast<double>(q) * bars.back().close;
  return final_equity - cash;
}

} // namespace mycelium::backtest
