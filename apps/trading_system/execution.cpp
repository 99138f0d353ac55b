// trading.execution: fills the orders of pre-trade risk against the market
// data and publishes the fills (to risk for positions, to the model). A
// fill is at the close of the order's bar, so fills do not depend on
// timing: an order that arrives before its bar waits for it. Only orders
// that risk checked are accepted: `order::check` must be risk's keyed hash
// (order_check.hpp), and its `risk_epoch` the epoch of the risk incarnation
// running now (the last risk_hello); any other order is refused and counted.
//
// It answers risk_hello with its positions (a restarted risk starts from
// them), measures the tick-to-order latency of every order, per hop and end
// to end, and when risk reports risk_done writes its journal (param `out`,
// JSON: fills, final positions, counts, latency samples in ns) and ends.
//
// Params: key (the risk key), out (journal path), deployment (a label),
// progress_every (log a progress line every N fills, default 500; 0: never).
#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "mycelium/actors/log.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "order_check.hpp"
#include "trading_system.hpp"

namespace ts = mycelium::trading;

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (auto c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

class execution : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    key_ = caf::get_or(params(), "key", std::string{"mycelium-risk-key"});
    out_ = caf::get_or(params(), "out", std::string{"journal.json"});
    deployment_ = caf::get_or(params(), "deployment", std::string{""});
    progress_every_ = static_cast<size_t>(caf::get_or(params(), "progress_every", int64_t{500}));
    subscribe<ts::bar>([this](const ts::bar& b) {
      closes_[b.seq] = b.close;
      ++bars_;
      drain_waiting();
    });
    subscribe<ts::order>([this](const ts::order& o) { on_order(o, now_ns()); });
    subscribe<ts::risk_hello>([this](const ts::risk_hello& h) { on_hello(h); });
    subscribe<ts::risk_done>([this](const ts::risk_done& d) {
      risk_done_ = d;
      done_ = true;
      finish();
    });
  }

private:
  struct pending {
    ts::order o;
    uint64_t t_in;
  };

  void on_order(const ts::order& o, uint64_t t_in) {
    bool checked = trading::order_check(key_, o) == o.check;
    if (checked && o.risk_epoch != epoch_) {
      // Checked by an incarnation of risk that is gone (it arrived late):
      // the one running now may not count it in its positions.
      ++refused_stale_;
      mycelium::log(mycelium::log_level::warning, service_name(),
                    fmt::format("refused order {}: from risk epoch {}, not the current {}",
                                o.order_id, o.risk_epoch, epoch_));
      return;
    }
    if (!checked) {
      ++refused_unchecked_;
      mycelium::log(mycelium::log_level::warning, service_name(),
                    fmt::format("refused order {} ({} {} {}): its check is not risk's; "
                                "only orders that risk checked are filled",
                                o.order_id, o.symbol,
                                o.side == ts::side::buy ? "buy" : "sell", o.qty));
      return;
    }
    epochs_.insert(o.risk_epoch);
    if (closes_.count(o.bar_seq) == 0) {
      waiting_.push_back({o, t_in});
      return;
    }
    fill(o, t_in);
  }

  void drain_waiting() {
    while (!waiting_.empty() && closes_.count(waiting_.front().o.bar_seq) != 0) {
      auto p = waiting_.front();
      waiting_.pop_front();
      fill(p.o, p.t_in);
    }
    finish();
  }

  void fill(const ts::order& o, uint64_t t_in) {
    auto px = closes_[o.bar_seq];
    auto& pos = positions_[o.symbol];
    pos += o.side == ts::side::buy ? int64_t{o.qty} : -int64_t{o.qty};
    last_order_id_ = std::max(last_order_id_, o.order_id);
    fills_.push_back(fmt::format("[{},{},{},\"{}\",{},{:.6f},{}]", o.order_id, o.bar_seq,
                                 json_str(o.symbol),
                                 o.side == ts::side::buy ? "buy" : "sell", o.qty, px, pos));
    // Per hop: publish -> handler entry; compute inside handlers excluded.
    md_signal_.push_back(o.t_signal_in - o.t_md);
    signal_risk_.push_back(o.t_risk_in - o.t_signal_out);
    risk_exec_.push_back(t_in - o.t_risk_out);
    end_to_end_.push_back(t_in - o.t_md);
    publish(ts::fill{o.order_id, o.bar_seq, o.symbol, o.side, o.qty, px, pos});
    if (progress_every_ > 0 && fills_.size() % progress_every_ == 0)
      mycelium::log(mycelium::log_level::info, service_name(),
                    fmt::format("fills={} orders waiting for their bar={}", fills_.size(),
                                waiting_.size()));
  }

  void on_hello(const ts::risk_hello& h) {
    // Risk repeats its hello until a snapshot reached it: answer each one,
    // count each epoch once.
    if (h.epoch != epoch_) {
      ++hellos_;
      epoch_ = h.epoch;
      if (hellos_ > 1)
        mycelium::log(mycelium::log_level::warning, service_name(),
                      fmt::format("risk (re)started with epoch {} (start {}): sending it "
                                  "{} position(s), last order id {}",
                                  h.epoch, hellos_, positions_.size(), last_order_id_));
    }
    auto count = static_cast<uint32_t>(positions_.size());
    if (count == 0) {
      publish(ts::position_snapshot{h.epoch, "", 0, 0, 0, last_order_id_});
      return;
    }
    uint32_t i = 0;
    for (auto& [sym, pos] : positions_)
      publish(ts::position_snapshot{h.epoch, sym, pos, i++, count, last_order_id_});
  }

  static std::string samples(const std::vector<uint64_t>& v) {
    return fmt::format("[{}]", fmt::join(v, ","));
  }

  void finish() {
    if (!done_ || !waiting_.empty() || written_)
      return;
    written_ = true;
    std::string pos;
    for (auto& [sym, p] : positions_)
      pos += fmt::format("{}{}:{}", pos.empty() ? "" : ",", json_str(sym), p);
    std::ofstream f{out_};
    f << "{\"deployment\":" << json_str(deployment_) << ",\"bars\":" << bars_
      << ",\"orders_filled\":" << fills_.size() << ",\"refused_unchecked\":" << refused_unchecked_
      << ",\"refused_stale\":" << refused_stale_
      << ",\"risk_starts\":" << hellos_ << ",\"risk_epochs\":" << epochs_.size()
      << ",\"risk_orders\":" << risk_done_.orders << ",\"risk_rejections\":"
      << risk_done_.rejections << ",\"risk_signals\":" << risk_done_.signals
      << ",\"positions\":{" << pos << "},\"fills\":[" << fmt::format("{}", fmt::join(fills_, ","))
      << "],\"latency_ns\":{\"md_signal\":" << samples(md_signal_)
      << ",\"signal_risk\":" << samples(signal_risk_) << ",\"risk_exec\":" << samples(risk_exec_)
      << ",\"end_to_end\":" << samples(end_to_end_) << "}}\n";
    f.close();
    mycelium::log(mycelium::log_level::info, service_name(),
                  fmt::format("session complete: {} fills, {} unchecked orders refused, "
                              "risk started {} time(s); journal {}",
                              fills_.size(), refused_unchecked_, hellos_, out_));
    quit();
  }

  std::string key_;
  std::string out_;
  std::string deployment_;
  size_t progress_every_ = 500;
  std::unordered_map<uint64_t, double> closes_;
  std::deque<pending> waiting_;
  std::map<std::string, int64_t> positions_;
  std::vector<std::string> fills_;
  std::vector<uint64_t> md_signal_, signal_risk_, risk_exec_, end_to_end_;
  std::set<uint64_t> epochs_;
  uint64_t bars_ = 0;
  uint64_t refused_unchecked_ = 0;
  uint64_t refused_stale_ = 0;
  uint64_t epoch_ = 0; ///< of the last risk_hello answered
  uint64_t last_order_id_ = 0;
  uint64_t hellos_ = 0;
  ts::risk_done risk_done_;
  bool done_ = false;
  bool written_ = false;
};

} // namespace

MYCELIUM_REGISTER_SERVICE("trading.execution", execution);
