// The actor side of the backtest driver: every instance is an isolated actor
// system on the thread-less testing scheduler; results equal the plain C++
// reference, do not depend on the thread count, and Monte Carlo VaR matches
// the closed form for buy-and-hold on GBM.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "mycelium/backtest/backtest_config.hpp"
#include "mycelium/backtest/crossover.hpp"
#include "mycelium/backtest/driver.hpp"
#include "mycelium/backtest/instance.hpp"
#include "mycelium/backtest/market_data.hpp"
#include "mycelium/backtest/messages.hpp"
#include "mycelium/backtest/metrics.hpp"
#include "mycelium/backtest/synthetic.hpp"
#include "mycelium/errc.hpp"

using namespace mycelium;
using namespace mycelium::backtest;
namespace fs = std::filesystem;

namespace {

bar_series_ptr sp500() {
  static bar_series_ptr data = [] {
    auto s = load_csv(std::string{MYCELIUM_TEST_DATA_DIR} + "/backtest/sp500-2000.csv");
    REQUIRE_MESSAGE(s, (s ? "" : render(s.error())));
    return std::make_shared<const bar_series>(std::move(*s));
  }();
  return data;
}

std::string slurp(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t thread_count() {
  size_t n = 0;
  for (auto& e : fs::directory_iterator{"/proc/self/task"}) {
    (void) e;
    ++n;
  }
  return n;
}

fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("mycelium-bt-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

} // namespace

TEST_CASE("backtest: the actor instance reproduces the plain-loop reference exactly") {
  auto bars = sp500();
  for (auto [fast, slow] : {std::pair<size_t, size_t>{5, 20}, {10, 50}, {20, 200}, {3, 4}}) {
    crossover_params p;
    p.fast = fast;
    p.slow = slow;
    p.fee = 1.5;
    auto plain = run_crossover_plain(*bars, p);
    auto actor = run_instance(bars, {strategy_kind::ma_crossover, p, true});
    REQUIRE_MESSAGE(actor, (actor ? "" : render(actor.error())));
    CAPTURE(fast);
    CAPTURE(slow);
    CHECK(actor->metrics.trades == plain.metrics.trades);
    CHECK(actor->metrics.final_equity == plain.metrics.final_equity);
    CHECK(actor->metrics.sharpe == plain.metrics.sharpe);
    CHECK(actor->metrics.max_drawdown == plain.metrics.max_drawdown);
    CHECK(actor->equity == plain.equity);
    REQUIRE(actor->fills.size() == plain.fills.size());
    for (size_t i = 0; i < plain.fills.size(); ++i) {
      CHECK(actor->fills[i].bar_index == plain.fills[i].bar_index);
      CHECK(actor->fills[i].units == plain.fills[i].units);
      CHECK(actor->fills[i].price == plain.fills[i].price);
    }
    CHECK(actor->metrics.trades > 0);
  }
}

TEST_CASE("backtest: results do not depend on the batch size") {
  auto bars = sp500();
  crossover_params p;
  p.fast = 7;
  p.slow = 33;
  auto reference = run_crossover_plain(*bars, p);
  for (size_t batch : {1, 2, 7, 64, 1000, 100000}) {
    CAPTURE(batch);
    auto r = run_instance(bars, {strategy_kind::ma_crossover, p, true, batch});
    REQUIRE(r);
    CHECK(r->equity == reference.equity);
    CHECK(r->metrics.trades == reference.metrics.trades);
    CHECK(r->metrics.sharpe == reference.metrics.sharpe);
  }
}

TEST_CASE("backtest: the actor buy-and-hold equals the reference on paths") {
  crossover_params p;
  p.cash = 100000;
  p.fee = 3;
  for (uint64_t i = 0; i < 50; ++i) {
    gbm_params g;
    g.days = 30;
    auto bars = std::make_shared<const bar_series>(generate_gbm(g, derive_seed(9, i)));
    auto r = run_instance(bars, {strategy_kind::buy_and_hold, p, false});
    REQUIRE(r);
    CHECK(r->metrics.final_equity - p.cash == buy_and_hold_pnl(*bars, p.cash, p.fee));
  }
}

namespace {

/// A user-written strategy: long from the first close, the "fast" parameter
/// ignored. Behaves like buy-and-hold, so its P&L has a plain reference.
class hold_forever : public mycelium::service {
public:
  using service::service;
  void on_start() override {
    seen_fast_ = caf::get_or(params(), "fast", int64_t{-1});
    subscribe<msg::bars>([this](const msg::bars& b) {
      msg::decisions d;
      d.first = b.first;
      d.action.assign(b.close.size(), 0);
      if (b.first == 0 && !d.action.empty())
        d.action[0] = 1; // go long at the first close
      publish(std::move(d));
    });
  }

private:
  int64_t seen_fast_ = -1;
};

} // namespace

TEST_CASE("backtest: a user-written strategy service plugs into instances and sweeps") {
  crossover_params p;
  p.cash = 50000;
  p.fee = 2;
  auto factory = [](caf::actor_system& sys, service_context ctx) {
    CHECK(caf::get_or(ctx.params, "fast", int64_t{0}) == 10);
    CHECK(caf::get_or(ctx.params, "cash", 0.0) == 50000.0);
    return sys.spawn<hold_forever>(std::move(ctx));
  };
  for (uint64_t i = 0; i < 10; ++i) {
    gbm_params g;
    g.days = 40;
    auto bars = std::make_shared<const bar_series>(generate_gbm(g, derive_seed(4, i)));
    instance_options opts{strategy_kind::ma_crossover, p, false, 16, factory};
    auto r = run_instance(bars, opts);
    REQUIRE(r);
    CHECK(r->metrics.final_equity - p.cash == buy_and_hold_pnl(*bars, p.cash, p.fee));
  }
  // and through the sweep driver, where it is local-only
  auto dir = temp_dir("custom");
  std::ofstream{dir / "s.toml"} << "[data]\nsource = \"gbm\"\ndays = 50\n[strategy]\n"
                                   "cash = 50000\nfee = 2\n[grid]\nfast = [10]\nslow = [20, 30]\n";
  auto cfg = load_sweep_config((dir / "s.toml").string());
  REQUIRE_MESSAGE(cfg, (cfg ? "" : render(cfg.error())));
  cfg->output_dir = (dir / "out").string();
  run_options ro;
  ro.plots = false;
  ro.custom_strategy = factory;
  REQUIRE(run_sweep(*cfg, ro));
  ro.workers = {"127.0.0.1:1"};
  auto remote = run_sweep(*cfg, ro);
  REQUIRE_FALSE(remote);
  CHECK(render(remote.error()).find("runs only locally") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("backtest: an instance runs without threads of its own") {
  auto before = thread_count();
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.console", caf::atom("none"));
  {
    caf::actor_system sys{cfg};
    CHECK(thread_count() == before);
  }
  auto bars = sp500();
  auto r = run_instance(bars, {strategy_kind::ma_crossover, crossover_params{}, false});
  REQUIRE(r);
  CHECK(thread_count() == before);
}

TEST_CASE("backtest: sweep output is byte-identical for 1 and 2 threads") {
  auto dir = temp_dir("det");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream{dir / name} << text;
  };
  write("sweep.toml", "[data]\nsource = \"gbm\"\ns0 = 50\nmu = 0.08\nsigma = 0.3\n"
                      "days = 600\n[strategy]\ncash = 10000\n[grid]\n"
                      "fast = { from = 2, to = 20, step = 3 }\nslow = [10, 25, 40, 60]\n"
                      "fee = [0, 5]\n[run]\nseed = 11\n[output]\nrank_by = \"total_return\"\n");
  auto cfg = load_sweep_config((dir / "sweep.toml").string());
  REQUIRE_MESSAGE(cfg, (cfg ? "" : render(cfg.error())));
  std::vector<std::string> outputs;
  for (size_t threads : {1, 2}) {
    cfg->output_dir = (dir / ("out" + std::to_string(threads))).string();
    run_options opts;
    opts.threads = threads;
    opts.plots = false;
    auto r = run_sweep(*cfg, opts);
    REQUIRE_MESSAGE(r, (r ? "" : render(r.error())));
    std::string all;
    for (auto f : {"results.csv", "summary.txt", "best_equity.csv", "best_fills.csv"})
      all += slurp(fs::path{cfg->output_dir} / f) + "\n--\n";
    outputs.push_back(all);
  }
  CHECK(outputs[0] == outputs[1]);
  CHECK(outputs[0].size() > 1000);
  fs::remove_all(dir);
}

TEST_CASE("backtest: Monte Carlo VaR of buy-and-hold on GBM matches the closed form") {
  auto dir = temp_dir("mc");
  std::ofstream{dir / "mc.toml"}
    << "[model]\nsource = \"gbm\"\ns0 = 100\nmu = 0.05\nsigma = 0.2\ndays = 21\n"
       "[simulation]\npaths = 20000\nseed = 3\n"
       "[portfolio]\nstrategy = \"buy_and_hold\"\ncash = 100000\nfee = 0\n";
  auto cfg = load_montecarlo_config((dir / "mc.toml").string());
  REQUIRE_MESSAGE(cfg, (cfg ? "" : render(cfg.error())));
  cfg->output_dir = (dir / "out").string();
  run_options opts;
  opts.plots = false;
  REQUIRE(run_montecarlo(*cfg, opts));
  std::vector<double> pnl;
  std::ifstream in{dir / "out" / "pnl.csv"};
  std::string line;
  std::getline(in, line); // header
  while (std::getline(in, line))
    pnl.push_back(std::stod(line.substr(line.find(',') + 1)));
  REQUIRE(pnl.size() == 20000);
  auto r = summarize_pnl(pnl);
  // Buy-and-hold enters at the first close (the fill model fills the first
  // bar's decision at the second bar's open, which equals the first close),
  // so the P&L covers days - 1 daily log returns X ~ N(m, s^2):
  // P&L = cash * (exp(X) - 1) up to whole-unit rounding (< 0.1 %).
  const double cash = 100000, mu = 0.05, sigma = 0.2, T = 20.0 / 252.0;
  const double m = (mu - sigma * sigma / 2) * T, s = sigma * std::sqrt(T);
  auto closed_var = [&](double z) { return cash * (1 - std::exp(m + s * z)); };
  // Standard error of an empirical quantile: sqrt(p(1-p)/n) / density.
  auto se = [&](double p, double z) {
    double phi = std::exp(-z * z / 2) / std::sqrt(2 * M_PI);
    return std::sqrt(p * (1 - p) / pnl.size()) * cash * std::exp(m + s * z) * s / phi;
  };
  const double z95 = -1.6448536269514722, z99 = -2.3263478740408408;
  CAPTURE(r.var95);
  CAPTURE(closed_var(z95));
  CHECK(std::abs(r.var95 - closed_var(z95)) < 4 * se(0.05, z95) + 0.002 * cash * s);
  CAPTURE(r.var99);
  CAPTURE(closed_var(z99));
  CHECK(std::abs(r.var99 - closed_var(z99)) < 4 * se(0.01, z99) + 0.002 * cash * s);
  CHECK(r.cvar95 > r.var95);
  CHECK(r.cvar99 > r.var99);
  CHECK(std::abs(r.stddev - cash * s) < 0.03 * cash * s);
  fs::remove_all(dir);
}
