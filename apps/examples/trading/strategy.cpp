// strategy: a moving-average crossover on the quote mid price. Goes long one
// lot when the fast average crosses above the slow one, flat when below.
#include <deque>
#include <numeric>

#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "trading.hpp"

namespace tr = example::trading;

class strategy : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    fast_ = static_cast<size_t>(caf::get_or(params(), "fast", int64_t{5}));
    slow_ = static_cast<size_t>(caf::get_or(params(), "slow", int64_t{20}));
    subscribe<tr::quote>([this](const tr::quote& q) { on_quote(q); });
    subscribe<tr::fill>([this](const tr::fill& f) {
      position_ += f.side == tr::side::buy ? int64_t{f.qty} : -int64_t{f.qty};
    });
    subscribe<tr::session_end>([this](const tr::session_end&) {
      publish(tr::strategy_done{next_id_ - 1});
    });
  }

private:
  double mean(size_t n) const {
    return std::accumulate(mids_.end() - static_cast<long>(n), mids_.end(), 0.0)
           / static_cast<double>(n);
  }

  void on_quote(const tr::quote& q) {
    mids_.push_back((q.bid + q.ask) / 2);
    if (mids_.size() > slow_)
      mids_.pop_front();
    if (mids_.size() < slow_)
      return;
    bool want_long = mean(fast_) > mean(slow_);
    if (want_long != long_) {
      long_ = want_long;
      auto s = want_long ? tr::side::buy : tr::side::sell;
      publish(tr::order{next_id_++, q.symbol, s, 1, want_long ? q.ask : q.bid});
    }
  }

  size_t fast_ = 5;
  size_t slow_ = 20;
  std::deque<double> mids_;
  bool long_ = false;
  int64_t position_ = 0;
  uint64_t next_id_ = 1;
};

MYCELIUM_REGISTER_SERVICE("example.strategy", strategy);
