// ticker: publishes a seeded random walk of quotes, one per self-message so
// it never monopolises a worker, then announces the end of the session. It
// starts when its node is ready (mycelium::node_ready), so that in any
// deployment the first quote reaches every subscriber.
#include <random>

#include <caf/all.hpp>

#include "mycelium/actors/node_ready.hpp"
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
    // Pace the session by sending ourselves a tick per quote.
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x)
                          -> caf::result<caf::message> {
      if (x.content().match_elements<tick_atom>())
        tick();
      return caf::message{};
    });
    subscribe<mycelium::node_ready>([this](const mycelium::node_ready&) {
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
    std::normal_distribution<double> step{0.0, 0.05};
    mid_ += step(rng_);
    publish(tr::quote{symbol_, ++sent_, mid_ - 0.01, mid_ + 0.01});
    send(this, tick_atom::value);
  }

  bool started_ = false;
  uint64_t total_ = 0;
  uint64_t sent_ = 0;
  double mid_ = 100.0;
  std::string symbol_;
  std::mt19937_64 rng_;
};

MYCELIUM_REGISTER_SERVICE("example.ticker", ticker);
