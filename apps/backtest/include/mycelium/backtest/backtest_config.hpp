#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "mycelium/backtest/crossover.hpp"
#include "mycelium/backtest/synthetic.hpp"

namespace mycelium::backtest {

/// Where market data comes from (`[data]` table).
struct data_source {
  enum class kind_t { csv, gbm, bootstrap };
  kind_t kind = kind_t::gbm;
  std::string csv;   ///< csv / bootstrap source, resolved relative to the config file
  gbm_params gbm;    ///< kind gbm (s0, mu, sigma, days)
  size_t days = 252; ///< bootstrap path length
  double s0 = 100.0; ///< bootstrap start price
};

/// One axis of a parameter grid, values in file order (lists) or ascending
/// (ranges `{ from, to, step }`, inclusive of `to` when it is hit exactly,
/// within 1e-9 steps). A single number is a one-value axis. fast/slow values
/// must be whole numbers >= 1, fee >= 0, no value twice; at most 1,000,000
/// values per axis and 100,000,000 parameter sets.
struct grid_axis {
  std::string name; ///< fast | slow | fee
  std::vector<double> values;
};

/// `mycelium-backtest sweep config.toml` (see docs/backtest.md):
///
/// ```toml
/// [data]
/// source = "csv"                 # csv | gbm | bootstrap
/// csv = "sp500.csv"
/// [strategy]
/// fee = 1.0
/// cash = 100000
/// [grid]
/// fast = [5, 10, 20]
/// slow = { from = 20, to = 200, step = 10 }
/// [output]
/// dir = "sweep-results"
/// rank_by = "sharpe"             # sharpe | total_return | max_drawdown | final_equity
/// [run]
/// seed = 1                       # synthetic data: every parameter set runs on the same path
/// ```
struct sweep_config {
  std::string file;
  data_source data;
  crossover_params base;       ///< [strategy]: fee, cash (and fast/slow when not in the grid)
  std::vector<grid_axis> grid; ///< at least one axis, each non-empty, in file order
  std::string output_dir = "backtest-results";
  std::string rank_by = "sharpe";
  uint64_t seed = 1;
};

/// `mycelium-backtest montecarlo config.toml`:
///
/// ```toml
/// [model]
/// source = "gbm"                 # gbm | bootstrap (then csv = ...)
/// s0 = 100
/// mu = 0.05
/// sigma = 0.2
/// days = 10
/// [simulation]
/// paths = 10000
/// seed = 7
/// [portfolio]
/// strategy = "buy_and_hold"      # buy_and_hold | ma_crossover
/// cash = 100000
/// fee = 0
/// fast = 5                       # ma_crossover only
/// slow = 20
/// [output]
/// dir = "mc-results"
/// ```
struct montecarlo_config {
  std::string file;
  data_source model;
  size_t paths = 10000;
  uint64_t seed = 1;
  std::string strategy = "buy_and_hold";
  crossover_params params;
  std::string output_dir = "montecarlo-results";
};

/// Parse and validate. Every error is `errc::config_invalid` naming
/// "file:line: [table] field 'x': what is wrong (what to do)"; unknown tables
/// and keys are errors (typos must not be ignored, near misses get "did you
/// mean"). All problems of a file are reported at once, one per line, in
/// file order. Relative paths (csv, output dir) resolve against the config
/// file's directory; CSV paths must name a readable file. [data] / [model]
/// and its `source` are required, and so is [grid] for a sweep; keys that do
/// not apply to the chosen source or strategy are errors. Thread-safe.
caf::expected<sweep_config> load_sweep_config(const std::string& path);
caf::expected<montecarlo_config> load_montecarlo_config(const std::string& path);

/// Expands the grid in row-major order (first axis varies slowest) into
/// parameter sets. Combinations with fast >= slow are left out and counted
/// in `skipped`.
std::vector<crossover_params> expand_grid(const sweep_config& cfg,
                                          size_t& skipped);

/// Loads the series a data source describes (CSV, or a generated path for
/// `seed`).
caf::expected<bar_series> load_data(const data_source& src, uint64_t seed);

} // namespace mycelium::backtest
