// executor: fills every order at its limit price and reports when the
// strategy's last order has been filled and the ticker's last quote has
// arrived. It waits for both ends because they come over different links in
// a split deployment: the strategy may finish before the last quotes reach
// the executor.
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
      strategy_done_ = true;
      finish();
    });
    subscribe<tr::session_end>([this](const tr::session_end&) {
      session_end_ = true;
      finish();
    });
  }

private:
  void finish() {
    if (strategy_done_ && session_end_)
      publish(tr::executor_done{fills_, quotes_});
  }

  bool strategy_done_ = false;
  bool session_end_ = false;
  uint64_t fills_ = 0;
  uint64_t quotes_ = 0;
};

MYCELIUM_REGISTER_SERVICE("example.executor", executor);
