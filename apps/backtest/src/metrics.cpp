#include "mycelium/backtest/metrics.hpp"

#include <algorithm>
#include <cmath>

namespace mycelium::backtest {

run_metrics compute_metrics(double initial, const std::vector<double>& equity,
                            uint64_t trades) {
  run_metrics m;
  m.trades = trades;
  m.final_equity = equity.empty() ? initial : equity.back();
  m.total_return = initial != 0 ? m.final_equity / initial - 1.0 : 0.0;

  // Daily returns of the curve initial, equity[0], equity[1], ...
  const size_t n = equity.size();
  if (n >= 2) {
    double sum = 0;
    double prev = initial;
    for (double e : equity) {
      sum += prev != 0 ? e / prev - 1.0 : 0.0;
      prev = e;
    }
    const double mean = sum / static_cast<double>(n);
    double sq = 0;
    prev = initial;
    for (double e : equity) {
      const double r = prev != 0 ? e / prev - 1.0 : 0.0;
      sq += (r - mean) * (r - mean);
      prev = e;
    }
    const double sd = std::sqrt(sq / static_cast<double>(n - 1));
    m.sharpe = sd > 0 ? mean / sd * std::sqrt(252.0) : 0.0;
  }

  double peak = initial;
  for (double e : equity) {
    peak = std::max(peak, e);
    if (peak > 0)
      m.max_drawdown = std::max(m.max_drawdown, (peak - e) / peak);
  }
  return m;
}

risk_summary summarize_pnl(std::vector<double> pnl) {
  risk_summary s;
  const size_t n = pnl.size();
  s.samples = n;
  if (n == 0)
    return s;
  std::sort(pnl.begin(), pnl.end());
  s.min = pnl.front();
  s.max = pnl.back();
  double sum = 0;
  for (double x : pnl)
    sum += x;
  s.mean = sum / static_cast<double>(n);
  if (n >= 2) {
    double sq = 0;
    for (double x : pnl)
      sq += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(sq / static_cast<double>(n - 1));
  }
  // Type-1 empirical quantile at p = percent/100: the k-th smallest value
  // with k = ceil(n p), at least 1 (integer arithmetic: no rounding of n p).
  auto tail = [&](size_t percent, double& var, double& cvar) {
    const size_t k = std::max<size_t>(1, (n * percent + 99) / 100);
    const double q = pnl[k - 1];
    var = 0.0 - q; // not -q: a zero quantile must print as 0, not -0
    double tail_sum = 0;
    size_t count = 0;
    for (size_t i = 0; i < n && pnl[i] <= q; ++i) {
      tail_sum += pnl[i];
      ++count;
    }
    cvar = 0.0 - tail_sum / static_cast<double>(count);
  };
  tail(5, s.var95, s.cvar95);
  tail(1, s.var99, s.cvar99);
  return s;
}

} // namespace mycelium::backtest
