// The trading system's order check (apps/trading_system/order_check.hpp)
// against the vectors the OCaml risk service is tested with
// (bindings/ocaml/test/test_risk.ml, docs/ocaml.md), computed a third time
// with Python's struct.pack: the C++ execution and the OCaml risk agree.
#include <doctest/doctest.h>

#include <limits>

#include "order_check.hpp"

namespace ts = mycelium::trading;

namespace {

ts::order make(uint64_t id, uint64_t bar, std::string sym, ts::side side, uint32_t qty,
               double limit, uint64_t epoch) {
  ts::order o;
  o.order_id = id;
  o.bar_seq = bar;
  o.symbol = std::move(sym);
  o.side = side;
  o.qty = qty;
  o.limit = limit;
  o.risk_epoch = epoch;
  return o;
}

} // namespace

TEST_CASE("order_check matches the OCaml risk service's vectors") {
  CHECK(trading::order_check("mycelium-risk-key",
                             make(1, 0, "AAPL", ts::side::buy, 100, 189.25, 1))
        == 0xcc5b74f9ce55cd50ull);
  CHECK(trading::order_check("mycelium-risk-key",
                             make(4242, 1234567, "MSFT", ts::side::sell, 37, 411.07,
                                  1733065200123456789ull))
        == 0xffe7599963c62045ull);
  CHECK(trading::order_check("cl\xc3\xa9",
                             make(std::numeric_limits<uint64_t>::max(), uint64_t{1} << 63,
                                  "BRK.B", ts::side::sell, 4294967295u, 0.1, 0))
        == 0x05003d3051639252ull);
}

TEST_CASE("order_check changes with every field and the key") {
  auto o = make(1, 2, "X", ts::side::buy, 3, 4.5, 6);
  auto base = trading::order_check("k", o);
  CHECK(trading::order_check("K", o) != base);
  auto p = o;
  p.qty = 4;
  CHECK(trading::order_check("k", p) != base);
  p = o;
  p.risk_epoch = 7;
  CHECK(trading::order_check("k", p) != base);
  p = o;
  p.side = ts::side::sell;
  CHECK(trading::order_check("k", p) != base);
  p = o;
  p.t_md = 99; // timing fields are not covered
  CHECK(trading::order_check("k", p) == base);
}
