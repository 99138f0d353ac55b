// executor: fills every order at its limit price and reports when the
// strategy's last order has been filled.
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "trading.hpp"

namespace tr = example::trading;

class executor : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    subscribe<tr::quote>([this](const tr::quote&) { ++quotes_; });
    subscribe<tr::order>([this](const tr::order& o) {
      publish(tr::fill{o.order_id, o.side, o.qty, o.limit});
      ++fills_;
    });
    subscribe<tr::strategy_done>([this](const tr::strategy_done&) {
      publish(tr::executor_done{fills_, quotes_});
    });
  }

private:
  uint64_t fills_ = 0;
  uint64_t quotes_ = 0;
};

MYCELIUM_REGISTER_SERVICE("example.executor", executor);
