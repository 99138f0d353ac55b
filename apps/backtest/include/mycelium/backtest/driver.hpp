#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "mycelium/backtest/backtest_config.hpp"
#include "mycelium/backtest/services.hpp"

namespace mycelium::backtest {

/// How a sweep or Monte Carlo run is executed. Results do not depend on any
/// of these: the same config gives byte-identical CSV and summary files.
struct run_options {
  size_t threads = 0;               ///< local worker threads, 0 = all cores
  bool progress = false;            ///< progress bar with rate and ETA on stderr
  bool plots = true;                ///< render PNGs with plot_backtest.py
  std::vector<std::string> workers; ///< host:port of remote workers (empty: local)
  std::string secret;               ///< proves the driver to workers that want one
  std::string plot_script;          ///< path of plot_backtest.py ("" = next to the binary or source tree)
  strategy_factory custom_strategy = {}; ///< a user-written strategy service (local runs only)
};

/// Runs every parameter set of the grid, each in its own instance, and
/// writes into `cfg.output_dir`: results.csv (one row per parameter set, in
/// grid order), best_equity.csv (the best run's curve), best_fills.csv,
/// summary.txt, and heatmap.png / best_equity.png. Returns the summary text.
caf::expected<std::string> run_sweep(const sweep_config& cfg,
                                     const run_options& opts);

/// Runs `cfg.paths` simulated paths through the portfolio and writes
/// pnl.csv, risk.txt (mean, stddev, VaR and CVaR at 95 and 99 %) and
/// pnl_histogram.png. Returns the risk text.
caf::expected<std::string> run_montecarlo(const montecarlo_config& cfg,
                                          const run_options& opts);

} // namespace mycelium::backtest
