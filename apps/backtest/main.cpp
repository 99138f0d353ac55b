// mycelium-backtest: parameter sweeps and Monte Carlo over thousands of
// isolated backtest instances (each its own actor system and bus), on every
// core or on remote workers. See docs/backtest.md.
//
//   mycelium-backtest sweep config.toml [--threads N] [--workers h:p,...]
//   mycelium-backtest montecarlo config.toml [--threads N]
//   mycelium-backtest worker --port P [--host 127.0.0.1] [--threads N]
//
// Exit codes: 0 success, 1 run failed, 2 bad command line or configuration.

#include <chrono>
#include <cstdio>
#include <iostream>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "mycelium/backtest/backtest_config.hpp"
#include "mycelium/backtest/driver.hpp"
#include "mycelium/backtest/remote.hpp"
#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"

namespace bt = mycelium::backtest;

namespace {

std::vector<std::string> split_workers(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    auto part = s.substr(start, comma == std::string::npos ? std::string::npos
                                                           : comma - start);
    if (!part.empty())
      out.push_back(part);
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return out;
}

int report(const caf::expected<std::string>& r,
           std::chrono::steady_clock::time_point start, size_t instances) {
  if (!r) {
    std::cerr << "mycelium-backtest: " << mycelium::render(r.error()) << "\n";
    return r.error().category() == mycelium::errc_category
               && (r.error().code() == static_cast<uint8_t>(mycelium::errc::config_invalid)
                   || r.error().code() == static_cast<uint8_t>(mycelium::errc::data_invalid))
             ? 2
             : 1;
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << *r << "\n"
            << instances << " instances in " << secs << " s ("
            << static_cast<double>(instances) / secs << " instances/s)\n";
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mycelium-backtest: parallel backtests over isolated Mycelium "
               "bus instances (docs/backtest.md)"};
  app.require_subcommand(1);
  bt::run_options opts;
  std::string config;
  std::string workers;
  std::string output;
  bool no_plots = false;
  bool progress = isatty(2) != 0;

  auto add_common = [&](CLI::App* sub) {
    sub->add_option("config", config, "configuration file (TOML)")->required();
    sub->add_option("--threads", opts.threads, "worker threads, 0 = all cores");
    sub->add_option("--output", output, "output directory (overrides [output] dir)");
    sub->add_flag("--no-plots", no_plots, "do not render PNG plots");
    sub->add_flag("--progress,!--no-progress", progress,
                  "progress bar on stderr (default: when stderr is a terminal)");
  };
  auto* sweep = app.add_subcommand("sweep", "run every parameter set of a grid");
  add_common(sweep);
  sweep->add_option("--workers", workers,
                    "run on remote workers host:port,... (see `worker`)");
  std::string secret_file;
  sweep->add_option("--secret-file", secret_file,
                    "prove to the workers that the driver knows this shared secret");
  auto* mc = app.add_subcommand("montecarlo",
                                "simulate N paths through the portfolio; VaR and CVaR");
  add_common(mc);
  auto* worker = app.add_subcommand("worker", "serve backtests to a remote driver");
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  worker->add_option("--host", host, "address to listen on (default loopback)");
  worker->add_option("--port", port, "port (0 = pick a free one and print it)")->required();
  worker->add_option("--threads", opts.threads, "threads, 0 = all cores");
  worker->add_option("--secret-file", secret_file,
                     "accept only drivers that know this shared secret (required "
                     "on addresses other than loopback)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  opts.plots = !no_plots;
  opts.progress = progress;
  opts.workers = split_workers(workers);
  if (!secret_file.empty()) {
    auto s = mycelium::config::read_secret_file(secret_file);
    if (!s) {
      std::cerr << "mycelium-backtest: " << mycelium::render(s.error()) << "\n";
      return 2;
    }
    opts.secret = std::move(*s);
  }
  auto start = std::chrono::steady_clock::now();

  if (worker->parsed()) {
    if (auto err = bt::serve_worker(host, port, opts.threads, opts.secret)) {
      std::cerr << "mycelium-backtest worker: " << mycelium::render(err) << "\n";
      return 2;
    }
    return 0;
  }
  if (sweep->parsed()) {
    auto cfg = bt::load_sweep_config(config);
    if (!cfg) {
      std::cerr << "mycelium-backtest: " << mycelium::render(cfg.error()) << "\n";
      return 2;
    }
    if (!output.empty())
      cfg->output_dir = output;
    size_t skipped = 0;
    auto n = bt::expand_grid(*cfg, skipped).size();
    return report(bt::run_sweep(*cfg, opts), start, n);
  }
  auto cfg = bt::load_montecarlo_config(config);
  if (!cfg) {
    std::cerr << "mycelium-backtest: " << mycelium::render(cfg.error()) << "\n";
    return 2;
  }
  if (!output.empty())
    cfg->output_dir = output;
  return report(bt::run_montecarlo(*cfg, opts), start, cfg->paths);
}
