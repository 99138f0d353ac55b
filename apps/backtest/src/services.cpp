#include "mycelium/backtest/services.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <optional>

#include "mycelium/backtest/messages.hpp"

namespace mycelium::backtest {

namespace m = mycelium::backtest::msg;

namespace {

constexpr uint8_t hold = 0;
constexpr uint8_t go_long = 1;
constexpr uint8_t go_flat = 2;

/// Publishes the series in batches, then end_of_data. The exchange orders
/// everything by bar index, so replay needs no flow control.
class replay : public service {
public:
  replay(caf::actor_config& cfg, service_context ctx, bar_series_ptr bars,
         size_t batch)
    : service(cfg, std::move(ctx)), bars_(std::move(bars)),
      batch_(std::max<size_t>(1, batch)) {
  }

  void on_start() override {
    subscribe<m::start>([this](const m::start&) {
      auto& s = *bars_;
      for (size_t first = 0; first < s.size(); first += batch_) {
        auto n = std::min(batch_, s.size() - first);
        m::bars b;
        b.first = static_cast<uint32_t>(first);
        b.day.reserve(n);
        b.open.reserve(n);
        b.high.reserve(n);
        b.low.reserve(n);
        b.close.reserve(n);
        b.volume.reserve(n);
        for (size_t i = first; i < first + n; ++i) {
          b.day.push_back(s[i].day);
          b.open.push_back(s[i].open);
          b.high.push_back(s[i].high);
          b.low.push_back(s[i].low);
          b.close.push_back(s[i].close);
          b.volume.push_back(s[i].volume);
        }
        publish(std::move(b));
      }
      publish(m::end_of_data{static_cast<uint32_t>(s.size())});
    });
  }

private:
  bar_series_ptr bars_;
  size_t batch_;
};

/// Moving-average crossover (or buy-and-hold) on closes; one decision per
/// bar, answered per batch.
class strategy : public service {
public:
  strategy(caf::actor_config& cfg, service_context ctx, strategy_kind kind,
           crossover_params p)
    : service(cfg, std::move(ctx)), kind_(kind), p_(p) {
  }

  void on_start() override {
    subscribe<m::bars>([this](const m::bars& b) {
      m::decisions d;
      d.first = b.first;
      d.action.reserve(b.close.size());
      for (size_t k = 0; k < b.close.size(); ++k)
        d.action.push_back(decide(b.first + k, b.close[k]));
      publish(std::move(d));
    });
  }

private:
  uint8_t decide(size_t index, double close) {
    if (kind_ == strategy_kind::buy_and_hold)
      return index == 0 ? go_long : hold;
    closes_.push_back(close);
    if (closes_.size() > p_.slow)
      closes_.pop_front();
    if (closes_.size() < p_.slow)
      return hold;
    bool want = mean(p_.fast) > mean(p_.slow);
    if (want == long_)
      return hold;
    long_ = want;
    return want ? go_long : go_flat;
  }

  // Summed over the window, oldest first, each time: running sums drift with
  // rounding, and the plain-loop reference must compute the same numbers.
  double mean(size_t n) const {
    double s = 0;
    for (size_t i = closes_.size() - n; i < closes_.size(); ++i)
      s += closes_[i];
    return s / static_cast<double>(n);
  }

  strategy_kind kind_;
  crossover_params p_;
  std::deque<double> closes_;
  bool long_ = false;
};

/// Simulated exchange and broker account: fills the order decided at the
/// close of bar t - 1 at the open of bar t, whole units, `fee` per fill. Bar
/// t is processed only once that decision is known, so the outcome does not
/// depend on how bars and decisions interleave in its mailbox.
class exchange : public service {
public:
  exchange(caf::actor_config& cfg, service_context ctx, crossover_params p)
    : service(cfg, std::move(ctx)), cash_(p.cash), fee_(p.fee) {
  }

  void on_start() override {
    subscribe<m::bars>([this](const m::bars& b) {
      for (size_t k = 0; k < b.close.size(); ++k)
        bars_.push_back({b.day[k], b.open[k], b.high[k], b.low[k], b.close[k],
                         b.volume[k]});
      advance();
    });
    subscribe<m::decisions>([this](const m::decisions& d) {
      decisions_.insert(decisions_.end(), d.action.begin(), d.action.end());
      advance();
    });
    subscribe<m::end_of_data>([this](const m::end_of_data& e) {
      total_ = e.bars;
      advance();
    });
  }

private:
  void advance() {
    m::marks out;
    out.first = static_cast<uint32_t>(next_);
    out.fee = fee_;
    // Bars arrive in order from one publisher; decisions likewise.
    while (next_ < base_ + bars_.size() && (next_ == 0 || next_ - 1 < decisions_.size())) {
      auto& b = bars_[next_ - base_];
      auto pending = next_ == 0 ? hold : decisions_[next_ - 1];
      if (pending == go_long) {
        auto n = static_cast<int64_t>(std::floor((cash_ - fee_) / b.open));
        if (n > 0) {
          cash_ -= static_cast<double>(n) * b.open + fee_;
          units_ += n;
          add_fill(out, true, n, b.open);
        }
      } else if (pending == go_flat && units_ > 0) {
        cash_ += static_cast<double>(units_) * b.open - fee_;
        add_fill(out, false, units_, b.open);
        units_ = 0;
      }
      out.close.push_back(b.close);
      ++next_;
    }
    if (!out.close.empty())
      publish(std::move(out));
    // Drop processed bars so memory stays bounded by what is in flight.
    if (next_ - base_ >= 4096) {
      bars_.erase(bars_.begin(), bars_.begin() + static_cast<long>(next_ - base_));
      base_ = next_;
    }
    if (total_ && next_ == *total_ && !ended_) {
      ended_ = true;
      publish(m::session_end{static_cast<uint32_t>(next_)});
    }
  }

  void add_fill(m::marks& out, bool buy, int64_t units, double price) {
    out.fill_index.push_back(static_cast<uint32_t>(next_));
    out.fill_buy.push_back(buy);
    out.fill_units.push_back(units);
    out.fill_price.push_back(price);
  }

  double cash_;
  double fee_;
  int64_t units_ = 0;
  std::vector<bar> bars_;          ///< bars base_ .. base_ + size - 1
  size_t base_ = 0;
  std::vector<uint8_t> decisions_; ///< decision at the close of bar i
  size_t next_ = 0;                ///< next bar to process
  std::optional<size_t> total_;
  bool ended_ = false;
};

/// Accounting: applies fills at the open of their bar, marks equity at every
/// close, computes the metrics at the end of the session.
class portfolio : public service {
public:
  portfolio(caf::actor_config& cfg, service_context ctx, crossover_params p,
            std::shared_ptr<result_slot> slot)
    : service(cfg, std::move(ctx)), initial_(p.cash), cash_(p.cash),
      slot_(std::move(slot)) {
  }

  void on_start() override {
    subscribe<m::marks>([this](const m::marks& mk) {
      size_t f = 0;
      for (size_t k = 0; k < mk.close.size(); ++k) {
        auto index = mk.first + k;
        for (; f < mk.fill_index.size() && mk.fill_index[f] == index; ++f) {
          auto units = mk.fill_units[f];
          auto price = mk.fill_price[f];
          if (mk.fill_buy[f]) {
            cash_ -= static_cast<double>(units) * price + mk.fee;
            units_ += units;
          } else {
            cash_ += static_cast<double>(units) * price - mk.fee;
            units_ -= units;
          }
          ++trades_;
          if (slot_->keep_curve)
            slot_->result.fills.push_back({index, mk.fill_buy[f], units, price});
        }
        equity_.push_back(cash_ + static_cast<double>(units_) * mk.close[k]);
      }
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
                        std::shared_ptr<result_slot> slot, size_t batch,
                        const strategy_factory& custom) {
  auto ctx = [&](const char* name) { return service_context{name, bus, {}}; };
  caf::actor strat;
  if (custom) {
    auto c = ctx("strategy");
    c.params["fast"] = static_cast<int64_t>(params.fast);
    c.params["slow"] = static_cast<int64_t>(params.slow);
    c.params["fee"] = params.fee;
    c.params["cash"] = params.cash;
    strat = custom(sys, std::move(c));
  } else {
    strat = sys.spawn<strategy>(ctx("strategy"), kind, params);
  }
  return {sys.spawn<portfolio>(ctx("portfolio"), params, std::move(slot)),
          sys.spawn<exchange>(ctx("exchange"), params), std::move(strat),
          sys.spawn<replay>(ctx("replay"), std::move(bars), batch)};
}

} // namespace mycelium::backtest
