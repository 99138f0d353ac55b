// mycelium-bench-backtest: market events per second per core over thousands
// of isolated backtest instances, against the same strategy as a plain C++
// loop (no actors) in the same run; parallel efficiency from 1 to all cores;
// memory per instance and time to create them. Writes
// benchmarks/results/backtest.json. A program, not a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "mycelium/backtest/crossover.hpp"
#include "mycelium/backtest/instance.hpp"
#include "mycelium/backtest/synthetic.hpp"

namespace bt = mycelium::backtest;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

size_t rss_bytes() {
  std::ifstream in{"/proc/self/statm"};
  size_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mycelium-bench-backtest: backtest throughput, actors vs a plain loop"};
  size_t instances = 10000;
  size_t bars = 250;
  size_t rounds = 3;
  size_t create = 10000;
  std::string json = MYCELIUM_BENCH_RESULTS_DIR "/backtest.json";
  app.add_option("--instances", instances, "instances per measurement");
  app.add_option("--bars", bars, "bars (market events) per instance");
  app.add_option("--rounds", rounds, "alternating rounds; medians are reported");
  app.add_option("--create", create, "instances alive at once for the memory/creation test");
  app.add_option("--json", json, "result file");
  CLI11_PARSE(app, argc, argv);

  auto cores = std::max(1u, std::thread::hardware_concurrency());
  bt::gbm_params g;
  g.days = bars;
  auto data = std::make_shared<const bt::bar_series>(bt::generate_gbm(g, 1));
  std::vector<bt::crossover_params> sets(instances);
  for (size_t i = 0; i < instances; ++i) {
    sets[i].fast = 2 + i % 20;
    sets[i].slow = sets[i].fast + 5 + (i / 20) % 30;
  }
  const double events = static_cast<double>(instances) * static_cast<double>(bars);
  std::printf("mycelium-bench-backtest: %zu instances x %zu bars (events), %u cores, "
              "%zu alternating rounds, medians; every instance is its own actor "
              "system (creation included in the actor times)\n", instances, bars, cores, rounds);

  std::vector<size_t> thread_counts{1};
  if (cores > 1)
    thread_counts.push_back(cores);
  struct row {
    size_t threads;
    double plain_eps, actor_eps, actor1_eps;
  };
  std::vector<row> rows;
  volatile double sink = 0;
  for (auto threads : thread_counts) {
    std::vector<double> plain, actor, actor1;
    for (size_t r = 0; r < rounds; ++r) {
      auto t0 = clock_type::now();
      std::vector<double> out(instances);
      bt::parallel_for(instances, threads, [&](size_t i) {
        out[i] = bt::run_crossover_plain(*data, sets[i]).metrics.final_equity;
      });
      plain.push_back(events / seconds_since(t0));
      t0 = clock_type::now();
      std::vector<double> out2(instances);
      bt::parallel_for(instances, threads, [&](size_t i) {
        auto res = bt::run_instance(data, {bt::strategy_kind::ma_crossover, sets[i], false});
        out2[i] = res ? res->metrics.final_equity : -1;
      });
      actor.push_back(events / seconds_since(t0));
      t0 = clock_type::now();
      std::vector<double> out3(instances);
      bt::parallel_for(instances, threads, [&](size_t i) {
        auto res = bt::run_instance(data, {bt::strategy_kind::ma_crossover, sets[i], false, 1});
        out3[i] = res ? res->metrics.final_equity : -1;
      });
      actor1.push_back(events / seconds_since(t0));
      if (out != out2 || out != out3) {
        std::fprintf(stderr, "error: actor and plain results differ\n");
        return 1;
      }
      sink = sink + out[0];
    }
    rows.push_back({threads, median(plain), median(actor), median(actor1)});
    std::printf("  %zu thread(s): plain loop %8.2f M events/s (%6.2f M/core) | "
                "actors, batch 64: %7.3f M/s (%6.3f M/core, %.4f of plain) | "
                "actors, batch 1: %6.3f M/s (%6.3f M/core)\n",
                threads, rows.back().plain_eps / 1e6,
                rows.back().plain_eps / 1e6 / threads, rows.back().actor_eps / 1e6,
                rows.back().actor_eps / 1e6 / threads,
                rows.back().actor_eps / rows.back().plain_eps,
                rows.back().actor1_eps / 1e6, rows.back().actor1_eps / 1e6 / threads);
  }
  double eff_actor = rows.size() > 1
                       ? rows[1].actor_eps / (rows[0].actor_eps * rows[1].threads)
                       : 1.0;
  double eff_plain = rows.size() > 1
                       ? rows[1].plain_eps / (rows[0].plain_eps * rows[1].threads)
                       : 1.0;
  std::printf("  parallel efficiency 1 -> %zu threads: actors %.1f %%, plain %.1f %%\n",
              rows.back().threads, eff_actor * 100, eff_plain * 100);

  // Creation and memory: `create` instances alive at once (each its own
  // actor system, bus and four initialised services), on one thread.
  auto rss0 = rss_bytes();
  auto t0 = clock_type::now();
  std::vector<std::unique_ptr<bt::instance>> alive;
  alive.reserve(create);
  for (size_t i = 0; i < create; ++i)
    alive.push_back(std::make_unique<bt::instance>(
      data, bt::instance_options{bt::strategy_kind::ma_crossover, sets[i % instances], false}));
  auto create_s = seconds_since(t0);
  auto rss1 = rss_bytes();
  auto threads_alive = std::distance(std::filesystem::directory_iterator{"/proc/self/task"},
                                     std::filesystem::directory_iterator{});
  t0 = clock_type::now();
  alive.clear();
  auto destroy_s = seconds_since(t0);
  double per_instance_kb = static_cast<double>(rss1 - rss0) / static_cast<double>(create) / 1024;
  std::printf("  %zu instances alive: created in %.3f s (%.1f us each), destroyed in %.3f s, "
              "%.1f KiB RSS each, process threads while alive: %ld\n",
              create, create_s, create_s / static_cast<double>(create) * 1e6, destroy_s,
              per_instance_kb, static_cast<long>(threads_alive));

  std::ofstream out{json};
  out << "{\n  \"benchmark\": \"backtest\",\n"
      << fmt::format("  \"instances\": {}, \"bars\": {}, \"cores\": {}, \"rounds\": {},\n",
                     instances, bars, cores, rounds)
      << "  \"throughput\": [\n";
  for (size_t k = 0; k < rows.size(); ++k)
    out << fmt::format("    {{\"threads\": {}, \"plain_events_per_s\": {:.0f}, "
                       "\"actor_events_per_s\": {:.0f}, \"actor_per_core\": {:.0f}, "
                       "\"ratio_actor_plain\": {:.4f}, \"actor_batch1_events_per_s\": {:.0f}}}{}\n",
                       rows[k].threads, rows[k].plain_eps, rows[k].actor_eps,
                       rows[k].actor_eps / rows[k].threads,
                       rows[k].actor_eps / rows[k].plain_eps, rows[k].actor1_eps,
                       k + 1 < rows.size() ? "," : "");
  out << "  ],\n"
      << fmt::format("  \"parallel_efficiency_actor\": {:.4f}, \"parallel_efficiency_plain\": {:.4f},\n",
                     eff_actor, eff_plain)
      << fmt::format("  \"create_instances\": {}, \"create_seconds\": {:.4f}, "
                     "\"destroy_seconds\": {:.4f}, \"rss_kib_per_instance\": {:.1f}, "
                     "\"threads_while_alive\": {}\n}}\n",
                     create, create_s, destroy_s, per_instance_kb, threads_alive);
  std::printf("results: %s\n", json.c_str());
  return sink == 12345.678 ? 1 : 0;
}
