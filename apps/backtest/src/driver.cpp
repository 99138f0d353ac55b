#include "mycelium/backtest/driver.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "mycelium/backtest/instance.hpp"
#include "mycelium/backtest/remote.hpp"
#include "mycelium/errc.hpp"

namespace fs = std::filesystem;

namespace mycelium::backtest {

namespace {

/// Shows "[#####     ] 5234/10000  52%  1234/s  ETA 4 s" on stderr while a
/// run is in progress (a display refresh, not synchronisation).
class progress_bar {
public:
  progress_bar(bool enabled, size_t total, std::atomic<size_t>& done)
    : enabled_(enabled), total_(total), done_(done) {
    if (enabled_)
      thread_ = std::thread{[this] { loop(); }};
  }

  ~progress_bar() {
    if (!enabled_)
      return;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    draw();
    std::fputc('\n', stderr);
  }

private:
  void loop() {
    std::unique_lock<std::mutex> lock{mtx_};
    while (!cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_; }))
      draw();
  }

  void draw() {
    auto n = done_.load(std::memory_order_relaxed);
    auto secs = std::chrono::duration<double>(clock::now() - start_).count();
    double rate = secs > 0 ? static_cast<double>(n) / secs : 0;
    double eta = rate > 0 ? static_cast<double>(total_ - n) / rate : 0;
    size_t width = 30;
    size_t filled = total_ ? n * width / total_ : width;
    auto line = fmt::format("\r[{}{}] {}/{} {:3}%  {:.0f}/s  ETA {:.0f} s ",
                            std::string(filled, '#'), std::string(width - filled, ' '),
                            n, total_, total_ ? n * 100 / total_ : 100, rate, eta);
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
  }

  using clock = std::chrono::steady_clock;
  bool enabled_;
  size_t total_;
  std::atomic<size_t>& done_;
  clock::time_point start_ = clock::now();
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

/// Shortest text that reads back as the same double: deterministic output.
std::string num(double x) {
  return fmt::format("{}", x);
}

caf::error write_file(const fs::path& p, const std::string& text) {
  std::ofstream out{p, std::ios::binary};
  out << text;
  if (!out)
    return make_error(errc::config_invalid,
                      "cannot write " + p.string() + " (check [output] dir)");
  return caf::none;
}

double metric_of(const run_metrics& m, const std::string& name) {
  if (name == "total_return")
    return m.total_return;
  if (name == "max_drawdown")
    return -m.max_drawdown; // smaller drawdown is better
  if (name == "final_equity")
    return m.final_equity;
  return m.sharpe;
}

std::string find_plot_script(const run_options& opts) {
  if (!opts.plot_script.empty())
    return opts.plot_script;
  char self[4096];
  auto n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::vector<fs::path> candidates;
  if (n > 0) {
    self[n] = '\0';
    auto dir = fs::path{self}.parent_path();
    candidates.push_back(dir / "plot_backtest.py");
    candidates.push_back(dir / "../share/mycelium/plot_backtest.py");
  }
  candidates.push_back(fs::path{MYCELIUM_BACKTEST_SOURCE_DIR} / "plot_backtest.py");
  for (auto& c : candidates)
    if (fs::exists(c))
      return c.string();
  return {};
}

/// Renders PNGs with matplotlib; a missing matplotlib is a warning, not an
/// error: the CSV and text results stand on their own.
void plot(const run_options& opts, const std::string& kind, const fs::path& dir,
          std::string& summary) {
  if (!opts.plots)
    return;
  auto script = find_plot_script(opts);
  if (script.empty()) {
    summary += "plots: skipped (plot_backtest.py not found)\n";
    return;
  }
  auto cmd = fmt::format("/usr/bin/python3 '{}' {} '{}' 2>&1", script, kind, dir.string());
  auto* pipe = popen(cmd.c_str(), "r");
  std::string out;
  if (pipe) {
    char buf[512];
    while (fgets(buf, sizeof buf, pipe))
      out += buf;
    auto rc = pclose(pipe);
    if (rc == 0)
      return;
  }
  std::fprintf(stderr, "warning: plots not rendered: %s", out.empty() ? "python3 failed\n" : out.c_str());
}

/// Runs `instances` jobs on the local pool; `job(i)` returns the instance's
/// outcome or an error; the first error wins.
template <class Job>
caf::error run_local(size_t instances, const run_options& opts,
                     std::atomic<size_t>& done, Job job) {
  caf::error failure;
  std::mutex mtx;
  parallel_for(instances, opts.threads, [&](size_t i) {
    if (auto err = job(i)) {
      std::lock_guard<std::mutex> guard{mtx};
      if (!failure)
        failure = std::move(err);
    }
  }, &done);
  return failure;
}

caf::expected<fs::path> make_output_dir(const std::string& name) {
  fs::path dir = name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(errc::config_invalid, "cannot create output directory "
                                              + dir.string() + ": " + ec.message());
  return dir;
}

std::string params_text(const crossover_params& p) {
  return fmt::format("fast={} slow={} fee={}", p.fast, p.slow, num(p.fee));
}

} // namespace

caf::expected<std::string> run_sweep(const sweep_config& cfg,
                                     const run_options& opts) {
  auto data = load_data(cfg.data, cfg.seed);
  if (!data)
    return data.error();
  if (data->size() < 2)
    return make_error(errc::data_invalid, cfg.file + ": the data has fewer than 2 bars");
  auto bars = std::make_shared<const bar_series>(std::move(*data));
  size_t skipped = 0;
  auto sets = expand_grid(cfg, skipped);
  if (sets.empty())
    return make_error(errc::config_invalid,
                      cfg.file + ": [grid] yields no valid parameter set (every "
                                 "combination has fast >= slow)");
  std::vector<run_metrics> results(sets.size());
  std::atomic<size_t> done{0};
  caf::error failure;
  {
    progress_bar bar{opts.progress, sets.size(), done};
    if (!opts.workers.empty() && opts.custom_strategy) {
      failure = make_error(errc::config_invalid,
                           "a custom strategy runs only locally: workers run "
                           "the built-in strategies of their own binary");
    } else if (!opts.workers.empty()) {
      auto r = run_remote(opts.workers, bars, strategy_kind::ma_crossover, sets,
                          results, done, opts.secret);
      if (r)
        failure = r;
    } else {
      failure = run_local(sets.size(), opts, done, [&](size_t i) -> caf::error {
        auto r = run_instance(bars, {strategy_kind::ma_crossover, sets[i], false, 64,
                                     opts.custom_strategy});
        if (!r)
          return r.error();
        results[i] = r->metrics;
        return caf::none;
      });
    }
  }
  if (failure)
    return failure;
  auto out_dir = make_output_dir(cfg.output_dir);
  if (!out_dir)
    return out_dir.error();
  auto& dir = *out_dir;
  std::string csv = "fast,slow,fee,final_equity,total_return,sharpe,max_drawdown,trades\n";
  for (size_t i = 0; i < sets.size(); ++i) {
    auto& p = sets[i];
    auto& m = results[i];
    csv += fmt::format("{},{},{},{},{},{},{},{}\n", p.fast, p.slow, num(p.fee),
                       num(m.final_equity), num(m.total_return), num(m.sharpe),
                       num(m.max_drawdown), m.trades);
  }
  if (auto err = write_file(dir / "results.csv", csv))
    return err;
  // Rank: best first; ties keep grid order.
  std::vector<size_t> order(sets.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return metric_of(results[a], cfg.rank_by) > metric_of(results[b], cfg.rank_by);
  });
  auto best = order.front();
  auto best_run = run_instance(bars, {strategy_kind::ma_crossover, sets[best], true,
                                      64, opts.custom_strategy});
  if (!best_run)
    return best_run.error();
  std::string curve = "index,date,equity\n";
  for (size_t i = 0; i < best_run->equity.size(); ++i)
    curve += fmt::format("{},{},{}\n", i, format_iso_date((*bars)[i].day),
                         num(best_run->equity[i]));
  if (auto err = write_file(dir / "best_equity.csv", curve))
    return err;
  std::string fills = "index,date,side,units,price\n";
  for (auto& f : best_run->fills)
    fills += fmt::format("{},{},{},{},{}\n", f.bar_index,
                         format_iso_date((*bars)[f.bar_index].day),
                         f.buy ? "buy" : "sell", f.units, num(f.price));
  if (auto err = write_file(dir / "best_fills.csv", fills))
    return err;
  std::string summary = fmt::format(
    "sweep of {}\ndata: {} bars, {} to {}\ninstances: {} ({} grid points "
    "skipped because fast >= slow)\nranked by: {}\n\nbest: {}\n"
    "  final equity {:.2f}, total return {:.4f}, sharpe {:.4f}, "
    "max drawdown {:.4f}, trades {}\n\ntop {}:\n",
    cfg.file, bars->size(), format_iso_date(bars->front().day),
    format_iso_date(bars->back().day), sets.size(), skipped, cfg.rank_by,
    params_text(sets[best]), results[best].final_equity,
    results[best].total_return, results[best].sharpe,
    results[best].max_drawdown, results[best].trades,
    std::min<size_t>(10, order.size()));
  for (size_t k = 0; k < std::min<size_t>(10, order.size()); ++k) {
    auto i = order[k];
    summary += fmt::format("  {:2}. {:<28} sharpe {:8.4f}  return {:9.4f}  "
                           "drawdown {:.4f}  trades {}\n",
                           k + 1, params_text(sets[i]), results[i].sharpe,
                           results[i].total_return, results[i].max_drawdown,
                           results[i].trades);
  }
  if (auto err = write_file(dir / "summary.txt", summary))
    return err;
  plot(opts, "sweep", dir, summary);
  return summary;
}

caf::expected<std::string> run_montecarlo(const montecarlo_config& cfg,
                                          const run_options& opts) {
  bar_series_ptr source;
  if (cfg.model.kind == data_source::kind_t::bootstrap) {
    auto src = load_data(data_source{data_source::kind_t::csv, cfg.model.csv, {}, 0, 0}, 0);
    if (!src)
      return src.error();
    if (src->size() < 2)
      return make_error(errc::data_invalid, cfg.model.csv + ": fewer than 2 bars to bootstrap from");
    source = std::make_shared<const bar_series>(std::move(*src));
  }
  auto kind = cfg.strategy == "ma_crossover" ? strategy_kind::ma_crossover
                                             : strategy_kind::buy_and_hold;
  std::vector<double> pnl(cfg.paths);
  std::atomic<size_t> done{0};
  caf::error failure;
  {
    progress_bar bar{opts.progress, cfg.paths, done};
    failure = run_local(cfg.paths, opts, done, [&](size_t i) -> caf::error {
      auto seed = derive_seed(cfg.seed, i);
      auto path = cfg.model.kind == data_source::kind_t::bootstrap
                    ? bootstrap(*source, cfg.model.days, cfg.model.s0, seed)
                    : generate_gbm(cfg.model.gbm, seed);
      auto bars = std::make_shared<const bar_series>(std::move(path));
      auto r = run_instance(bars, {kind, cfg.params, false, 64, opts.custom_strategy});
      if (!r)
        return r.error();
      pnl[i] = r->metrics.final_equity - cfg.params.cash;
      return caf::none;
    });
  }
  if (failure)
    return failure;
  auto out_dir = make_output_dir(cfg.output_dir);
  if (!out_dir)
    return out_dir.error();
  auto& dir = *out_dir;
  std::string csv = "path,pnl\n";
  for (size_t i = 0; i < pnl.size(); ++i)
    csv += fmt::format("{},{}\n", i, num(pnl[i]));
  if (auto err = write_file(dir / "pnl.csv", csv))
    return err;
  auto r = summarize_pnl(pnl);
  auto text = fmt::format(
    "monte carlo of {}\npaths: {}, strategy: {}, cash {}\n"
    "P&L mean {:.2f}, stddev {:.2f}, min {:.2f}, max {:.2f}\n"
    "VaR 95% {:.2f}, CVaR 95% {:.2f}\nVaR 99% {:.2f}, CVaR 99% {:.2f}\n",
    cfg.file, r.samples, cfg.strategy, num(cfg.params.cash), r.mean, r.stddev,
    r.min, r.max, r.var95, r.cvar95, r.var99, r.cvar99);
  if (auto err = write_file(dir / "risk.txt", text))
    return err;
  plot(opts, "montecarlo", dir, text);
  return text;
}

} // namespace mycelium::backtest
