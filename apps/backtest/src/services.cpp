#include "mycelium/backtest/services.hpp"

#include <cmath>
#include <deque>

#include "backtest.hpp"

namespace mycelium::backtest {

namespace m = mycelium::backtest::msg;

namespace {

/// Publishes bars one at a time, each after the exchange is ready for it.
class replay : public service {
public:
  replay(caf::actor_config& cfg, service_context ctx, bar_series_ptr bars)
    : service(cfg, std::move(ctx)), bars_(std::move(bars)) {
  }

  void on_start() override {
    subscribe<m::start>([this](const m::start&) { send_bar(0); });
    subscribe<m::exchange_ready>(
      [this](const m::exchange_ready& r) { send_bar(r.index + 1); });
  }

private:
  void send_bar(size_t i) {
    if (i >= bars_->size()) {
      publish(m::end_of_data{static_cast<uint32_t>(bars_->size())});
      return;
    }
    auto& b = (*bars_)[i];
    publish(m::bar{static_cast<uint32_t>(i), b.day, b.open, b.high, b.low,
                   b.close, b.volume});
  }

  bar_series_ptr bars_;
};

/// Moving-average crossover (or buy-and-hold) on market_bar closes.
class strategy : public service {
public:
  strategy(caf::actor_config& cfg, service_context ctx, strategy_kind kind,
           crossover_params p)
    : service(cfg, std::move(ctx)), kind_(kind), p_(p) {
  }

  void on_start() override {
    subscribe<m::market_bar>([this](const m::market_bar& b) { on_bar(b); });
  }

private:
  void on_bar(const m::market_bar& b) {
    auto act = m::action::hold;
    if (kind_ == strategy_kind::buy_and_hold) {
      if (b.index == 0)
        act = m::action::go_long;
    } else {
      closes_.push_back(b.close);
      if (closes_.size() > p_.slow)
        closes_.pop_front();
      if (closes_.size() >= p_.slow) {
        bool want = fast_mean() > slow_mean();
        if (want != long_) {
          long_ = want;
          act = want ? m::action::go_long : m::action::go_flat;
        }
      }
    }
    publish(m::decision{b.index, act});
  }

  // Summed over the window, oldest first, each time: running sums drift with
  // rounding, and the plain-loop reference must compute the same numbers.
  double fast_mean() const {
    double s = 0;
    for (size_t i = closes_.size() - p_.fast; i < closes_.size(); ++i)
      s += closes_[i];
    return s / static_cast<double>(p_.fast);
  }
  double slow_mean() const {
    double s = 0;
    for (auto c : closes_)
      s += c;
    return s / static_cast<double>(p_.slow);
  }

  strategy_kind kind_;
  crossover_params p_;
  std::deque<double> closes_;
  bool long_ = false;
};

/// Simulated exchange and broker account: fills a pending market order at
/// the next bar's open, whole units, `fee` per fill (docs/backtest.md).
class exchange : public service {
public:
  exchange(caf::actor_config& cfg, service_context ctx, crossover_params p)
    : service(cfg, std::move(ctx)), cash_(p.cash), fee_(p.fee) {
  }

  void on_start() override {
    subscribe<m::bar>([this](const m::bar& b) { on_bar(b); });
    subscribe<m::decision>([this](const m::decision& d) {
      if (d.action != m::action::hold)
        pending_ = d.action;
      publish(m::exchange_ready{d.index});
    });
    subscribe<m::end_of_data>(
      [this](const m::end_of_data& e) { publish(m::session_end{e.bars}); });
  }

private:
  void on_bar(const m::bar& b) {
    if (pending_ == m::action::go_long) {
      auto n = static_cast<int64_t>(std::floor((cash_ - fee_) / b.open));
      if (n > 0) {
        cash_ -= static_cast<double>(n) * b.open + fee_;
        units_ += n;
        publish(m::fill{b.index, true, n, b.open, fee_});
      }
    } else if (pending_ == m::action::go_flat && units_ > 0) {
      cash_ += static_cast<double>(units_) * b.open - fee_;
      publish(m::fill{b.index, false, units_, b.open, fee_});
      units_ = 0;
    }
    pending_ = m::action::hold;
    publish(m::market_bar{b.index, b.day, b.close});
  }

  double cash_;
  double fee_;
  int64_t units_ = 0;
  m::action pending_ = m::action::hold;
};

/// Accounting: applies fills, marks equity at every close, computes the
/// metrics at the end of the session.
class portfolio : public service {
public:
  portfolio(caf::actor_config& cfg, service_context ctx, crossover_params p,
            std::shared_ptr<result_slot> slot)
    : service(cfg, std::move(ctx)), initial_(p.cash), cash_(p.cash),
      slot_(std::move(slot)) {
  }

  void on_start() override {
    subscribe<m::fill>([this](const m::fill& f) {
      if (f.buy) {
        cash_ -= static_cast<double>(f.units) * f.price + f.fee;
        units_ += f.units;
      } else {
        cash_ += static_cast<double>(f.units) * f.price - f.fee;
        units_ -= f.units;
      }
      ++trades_;
      if (slot_->keep_curve)
        slot_->result.fills.push_back({f.index, f.buy, f.units, f.price});
    });
    subscribe<m::market_bar>([this](const m::market_bar& b) {
      equity_.push_back(cash_ + static_cast<double>(units_) * b.close);
    });
    subscribe<m::session_end>([this](const m::session_end&) {
      slot_->result.metrics = compute_metrics(initial_, equity_, trades_);
      if (slot_->keep_curve)
        slot_->result.equity = std::move(equity_);
      slot_->done = true;
    });
  }

private:
  double initial_;
  double cash_;
  int64_t units_ = 0;
  uint64_t trades_ = 0;
  std::vector<double> equity_;
  std::shared_ptr<result_slot> slot_;
};

} // namespace

std::vector<caf::actor>
spawn_backtest_services(caf::actor_system& sys,
                        const std::shared_ptr<mycelium::bus>& bus,
                        bar_series_ptr bars, strategy_kind kind,
                        const crossover_params& params,
                        std::shared_ptr<result_slot> slot) {
  auto ctx = [&](const char* name) { return service_context{name, bus, {}}; };
  return {sys.spawn<portfolio>(ctx("portfolio"), params, std::move(slot)),
          sys.spawn<exchange>(ctx("exchange"), params),
          sys.spawn<strategy>(ctx("strategy"), kind, params),
          sys.spawn<replay>(ctx("replay"), std::move(bars))};
}

} // namespace mycelium::backtest
