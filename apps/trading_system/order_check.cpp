#include "order_check.hpp"

#include <cstring>

namespace trading {

namespace {

struct fnv1a {
  uint64_t h = 14695981039346656037ull;
  void byte(uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  }
  void bytes(const std::string& s) {
    for (auto c : s)
      byte(static_cast<uint8_t>(c));
  }
  template <class T>
  void le(T x) {
    for (size_t i = 0; i < sizeof(T); ++i)
      byte(static_cast<uint8_t>(static_cast<uint64_t>(x) >> (8 * i)));
  }
};

} // namespace

uint64_t order_check(const std::string& key, const mycelium::trading::order& o) {
  fnv1a f;
  f.bytes(key);
  f.le(o.order_id);
  f.le(o.bar_seq);
  f.bytes(o.symbol);
  f.byte(static_cast<uint8_t>(o.side));
  f.le(o.qty);
  uint64_t bits = 0;
  std::memcpy(&bits, &o.limit, sizeof(bits));
  f.le(bits);
  f.le(o.risk_epoch);
  return f.h;
}

} // namespace trading
