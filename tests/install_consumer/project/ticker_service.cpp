// A service in a static library: its registration must survive linking the
// library into a node binary (mycelium_add_node links it whole).
#include "consumer.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"

class consumer_ticker : public mycelium::service {
public:
  using service::service;
  void on_start() override {
    subscribe<consumer::demo::tick>([](const consumer::demo::tick&) {});
  }
};

MYCELIUM_REGISTER_SERVICE("consumer.ticker", consumer_ticker);
