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

/// Mean of the closes of bars t - n + 1 .. t, summed oldest first each time
/// (no running sum: its rounding drift would differ from the actor
/// strategy's, which sums its window the same way).
double window_mean(const bar_series& bars, size_t t, size_t n) {
  double s = 0;
  for (size_t i = t + 1 - n; i <= t; ++i)
    s += bars[i].close;
  return s / static_cast<double>(n);
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
    // 3. The signal, once both windows are full.
    if (!active || t + 1 < warmup)
      continue;
    const bool wanted =
      window_mean(bars, t, p.fast) > window_mean(bars, t, p.slow);
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
  // Same fill model as the crossover: the decision at the first close is
  // filled at the second bar's open.
  if (bars.size() < 2)
    return 0;
  const auto q = units_affordable(cash, fee, bars[1].open);
  if (q == 0)
    return 0;
  const double rest = cash - static_cast<double>(q) * bars[1].open - fee;
  const double final_equity = rest + static_cast<double>(q) * bars.back().close;
  return final_equity - cash;
}

} // namespace mycelium::backtest
