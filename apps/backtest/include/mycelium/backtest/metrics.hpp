#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mycelium::backtest {

/// Results of one backtest run, from its daily equity curve.
struct run_metrics {
  double final_equity = 0;
  double total_return = 0; ///< final / initial - 1
  double sharpe = 0;       ///< annualised: mean/stddev of daily returns * sqrt(252); 0 if stddev is 0
  double max_drawdown = 0; ///< largest peak-to-trough fall as a positive fraction
  uint64_t trades = 0;     ///< fills (a round trip is two)
};

/// `equity` holds the equity at the close of every bar, `initial` the
/// starting cash. Daily returns are those of the curve initial, equity[0],
/// equity[1], ... (one per bar); stddev is the sample one (n - 1); Sharpe is
/// 0 with fewer than 2 bars. The drawdown peak starts at `initial`.
run_metrics compute_metrics(double initial, const std::vector<double>& equity,
                            uint64_t trades);

/// Distribution summary of simulated P&L values (losses negative).
/// VaR and CVaR are reported as positive loss amounts:
/// var95 = -quantile(pnl, 0.05) (lower empirical quantile, type 1),
/// cvar95 = -mean of the pnl values <= -var95; likewise at 99 %. The
/// quantile is the k-th smallest value, k = ceil(n p) (at least 1),
/// computed in integers. stddev is the sample one (n - 1). All zero when
/// `pnl` is empty.
struct risk_summary {
  size_t samples = 0;
  double mean = 0;
  double stddev = 0;
  double min = 0;
  double max = 0;
  double var95 = 0;
  double cvar95 = 0;
  double var99 = 0;
  double cvar99 = 0;
};

risk_summary summarize_pnl(std::vector<double> pnl);

} // namespace mycelium::backtest
