// ticker: publishes a seeded random walk of quotes, one per self-message so
// it never monopolises a worker, then announces the end of the session. It
// starts when its node is ready (mycelium::deployment_ready), so that in any
// deployment the first quote reaches every subscriber.
#include <algorithm>
#include <chrono>
#include <random>

#include <caf/all.hpp>

#include "mycelium/actors/deployment_ready.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "trading.hpp"

namespace tr = example::trading;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

class ticker : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    total_ = static_cast<uint64_t>(caf::get_or(params(), "quotes", int64_t{1000}));
    rng_.seed(static_cast<uint64_t>(caf::get_or(params(), "seed", int64_t{42})));
    symbol_ = caf::get_or(params(), "symbol", std::string{"ACME"});
    // Quotes per second; 0 publishes as fast as the bus takes them.
    rate_ = caf::get_or(params(), "rate", int64_t{0});
    // Pace the session by sending ourselves a tick per quote.
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x)
                          -> caf::result<caf::message> {
      if (x.content().match_elements<tick_atom>())
        tick();
      return caf::message{};
    });
    subscribe<mycelium::deployment_ready>([this](const mycelium::deployment_ready&) {
      if (!started_) {
        started_ = true;
        send(this, tick_atom::value);
      }
    });
  }

private:
  void tick() {
    if (sent_ == total_) {
      publish(tr::session_end{sent_});
      return;
    }
    if (rate_ <= 0) {
      publish_quote();
      send(this, tick_atom::value);
      return;
    }
    // Paced: every millisecond, the quotes due by now.
    auto now = std::chrono::steady_clock::now();
    if (sent_ == 0)
      t0_ = now;
    auto due = static_cast<uint64_t>(
      std::chrono::duration<double>(now - t0_).count() * static_cast<double>(rate_)) + 1;
    while (sent_ < std::min(due, total_))
      publish_quote();
    delayed_send(this, std::chrono::milliseconds{1}, tick_atom::value);
  }

  void publish_quote() {
    std::normal_distribution<double> step{0.0, 0.05};
    mid_ += step(rng_);
    publish(tr::quote{symbol_, ++sent_, mid_ - 0.01, mid_ + 0.01});
  }

  bool started_ = false;
  int64_t rate_ = 0;
  std::chrono::steady_clock::time_point t0_{};
  uint64_t total_ = 0;
  uint64_t sent_ = 0;
  double mid_ = 100.0;
  std::string symbol_;
  std::mt19937_64 rng_;
};

MYCELIUM_REGISTER_SERVICE("example.ticker", ticker);
