// mycelium-example-trading: three services (ticker -> strategy -> executor)
// on one in-process bus. Prints the orders and fills that flow and the bus
// counters at the end. The README's run command uses it.
#include <chrono>
#include <iomanip>
#include <iostream>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>

#include "mycelium/actors/node.hpp"
#include "mycelium/actors/deployment_ready.hpp"
#include "mycelium/transports/system_config.hpp"
#include "trading.hpp"

namespace tr = example::trading;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  CLI::App app{"mycelium-example-trading: a ticker, a moving-average "
               "strategy and an executor on one in-process Mycelium bus"};
  int64_t quotes = 5000;
  int64_t seed = 42;
  int64_t fast = 5;
  int64_t slow = 20;
  bool quiet = false;
  std::string where = "pool";
  app.add_option("--placement", where,
                 "where the three services run: pool (CAF's workers) or loop "
                 "(the node's I/O loop; same code)")
    ->check(CLI::IsMember({"pool", "loop"}));
  app.add_option("--quotes", quotes, "quotes the ticker publishes")->check(CLI::Range(1, 100000000));
  app.add_option("--seed", seed, "random-walk seed");
  app.add_option("--fast", fast, "fast moving-average window")->check(CLI::Range(1, 10000));
  app.add_option("--slow", slow, "slow moving-average window")->check(CLI::Range(2, 10000));
  app.add_flag("--quiet", quiet, "print only the summary");
  CLI11_PARSE(app, argc, argv);
  if (fast >= slow) {
    std::cerr << "error: --fast (" << fast << ") must be smaller than --slow ("
              << slow << ")\n";
    return 2;
  }

  mycelium::placement placement = mycelium::placement::pool;
  if (auto err = mycelium::parse_placement(where, placement)) {
    std::cerr << "error: " << mycelium::render(err) << "\n";
    return 2;
  }

  mycelium::system_config cfg; // the I/O loop and scheduler defaults
  cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{cfg};
  mycelium::node node{sys, "example"};

  // Watch what flows with a blocking actor subscribed to orders and fills.
  caf::scoped_actor watcher{sys};
  auto me = caf::actor_cast<caf::strong_actor_ptr>(watcher);
  node.bus().subscribe(tr::order::type_id, "order", me, "watcher");
  node.bus().subscribe(tr::fill::type_id, "fill", me, "watcher");
  node.bus().subscribe(tr::executor_done::type_id, "executor_done", me, "watcher");

  caf::settings strat;
  strat["fast"] = fast;
  strat["slow"] = slow;
  caf::settings tick;
  tick["quotes"] = quotes;
  tick["seed"] = seed;
  auto start = std::chrono::steady_clock::now();
  struct start_spec {
    const char* type;
    const char* instance;
    caf::settings params;
  };
  for (auto& spec : {start_spec{"example.executor", "executor", {}},
                     start_spec{"example.strategy", "strategy", strat},
                     start_spec{"example.ticker", "ticker", tick}}) {
    auto svc = node.start(spec.type, spec.params, spec.instance, {}, placement);
    if (!svc) {
      std::cerr << "error: cannot start " << spec.type << ": "
                << mycelium::render(svc.error()) << "\n";
      return 1;
    }
    if (!quiet)
      std::cout << "started " << spec.instance << " on the " << where << "\n";
  }

  // Every service has started and subscribed: the ticker may begin.
  node.publish(mycelium::deployment_ready{"example", 1});

  bool done = false;
  uint64_t fills = 0;
  while (!done) {
    bool timed_out = false;
    watcher->receive(
      [&](const tr::order& o) {
        if (!quiet)
          std::cout << "order  #" << o.order_id << " " << to_string(o.side) << " "
                    << o.qty << " " << o.symbol << " limit " << std::fixed
                    << std::setprecision(2) << o.limit << "\n";
      },
      [&](const tr::fill& f) {
        if (!quiet)
          std::cout << "fill   #" << f.order_id << " " << to_string(f.side) << " "
                    << f.qty << " @ " << std::fixed << std::setprecision(2)
                    << f.px << "\n";
      },
      [&](const tr::executor_done& d) {
        done = true;
        fills = d.fills;
        std::cout << "session complete: " << d.quotes << " quotes, " << d.fills
                  << " fills\n";
      },
      caf::after(60s) >> [&] { timed_out = true; });
    if (timed_out) {
      std::cerr << "error: the session did not complete within 60 s\n";
      return 1;
    }
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "elapsed " << std::fixed << std::setprecision(3) << secs << " s\n\n"
            << "topic            published   enqueued  delivered  dropped  no-subscriber\n"
            << "(the watcher in main is a plain CAF actor: what it receives is enqueued, not counted as delivered)\n";
  for (auto& t : node.bus().topics())
    std::cout << std::left << std::setw(16) << t.type_name << std::right
              << std::setw(10) << t.published << std::setw(11) << t.enqueued << std::setw(11) << t.delivered
              << std::setw(9) << t.dropped << std::setw(15) << t.no_subscriber << "\n";
  std::cout << "\nservice          published  delivered  errors  restarts\n";
  for (auto& s : node.bus().services())
    std::cout << std::left << std::setw(16) << s.name << std::right << std::setw(10)
              << s.published << std::setw(11) << s.delivered << std::setw(8)
              << s.handler_errors << std::setw(10) << s.restarts << "\n";
  node.stop();
  return fills > 0 || quotes < slow ? 0 : 1;
}
