#pragma once

#include <cstdint>

#include "mycelium/backtest/market_data.hpp"

namespace mycelium::backtest {

/// A small, fast, portable PRNG (xoshiro256** seeded through splitmix64).
/// The same seed gives the same next()/uniform()/below() on every platform
/// and compiler. normal() also calls std::log/sqrt/sin/cos, so it is
/// identical wherever the same math library runs (every thread and process
/// on one machine; glibc builds agree in practice). Not thread-safe: one per
/// instance.
class rng {
public:
  explicit rng(uint64_t seed);
  uint64_t next();
  /// Uniform in [0, 1).
  double uniform();
  /// Standard normal (Box-Muller, cached second value).
  double normal();
  /// Uniform integer in [0, n), unbiased (rejection); 0 when n is 0.
  uint64_t below(uint64_t n);

private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0;
};

/// Geometric Brownian motion with annual drift `mu` and volatility `sigma`
/// over `days` trading days (dt = 1/252). Close-to-close log returns are
/// (mu - sigma^2/2) dt + sigma sqrt(dt) Z. Each bar's open is the previous
/// close (the first open is s0); high = max(open, close), low = min(open,
/// close); volume is 0. Day numbers are consecutive from `start_day`.
struct gbm_params {
  double s0 = 100.0;
  double mu = 0.05;
  double sigma = 0.2;
  size_t days = 252;
  int64_t start_day = 10957; // 2000-01-01
};

bar_series generate_gbm(const gbm_params& p, uint64_t seed);

/// Resamples the daily close-to-close log returns of `source` with
/// replacement to build a path of `days` bars starting at `s0`, shaped like
/// generate_gbm's output. `source` needs at least 2 bars (else the result
/// is empty; load_data reports that as an error).
bar_series bootstrap(const bar_series& source, size_t days, double s0,
                     uint64_t seed, int64_t start_day = 10957);

/// Seed of instance `index` derived from a run seed: independent streams,
/// independent of thread count and scheduling.
uint64_t derive_seed(uint64_t run_seed, uint64_t index);

} // namespace mycelium::backtest
