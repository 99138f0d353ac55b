// trading.market_data: replays daily bars from a CSV file (the S&P 500 file
// in tests/data/backtest: date,open,high,low,close,adjclose,volume) or a
// seeded synthetic tick stream, at `rate` bars per second (0: as fast as the
// bus takes them), once the deployment is ready; then session_end.
//
// Params: source = "csv" | "synthetic"; file (csv); symbol (csv, default
// "SPX"); symbols (synthetic, default ["AAA", "BBB"]); bars (0: the whole
// file; synthetic default 10000); seed (synthetic, default 7); rate.
#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <caf/all.hpp>

#include "mycelium/actors/deployment_ready.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "trading_system.hpp"

namespace ts = mycelium::trading;

namespace {

using tick_atom = caf::atom_constant<caf::atom("mdtick")>;

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

std::vector<ts::bar> read_csv(const std::string& path, const std::string& symbol,
                              uint64_t limit) {
  std::ifstream in{path};
  if (!in)
    throw std::runtime_error("market_data: cannot read file '" + path
                             + "' (param file, relative to the node's directory)");
  std::vector<ts::bar> out;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1 || line.empty())
      continue; // header
    std::stringstream ss{line};
    std::string f[7];
    for (auto& x : f)
      if (!std::getline(ss, x, ','))
        throw std::runtime_error("market_data: " + path + ":" + std::to_string(lineno)
                                 + ": expected 7 columns date,open,high,low,close,"
                                   "adjclose,volume");
    ts::bar b;
    b.symbol = symbol;
    b.date = f[0];
    try {
      b.open = std::stod(f[1]);
      b.high = std::stod(f[2]);
      b.low = std::stod(f[3]);
      b.close = std::stod(f[4]);
      b.volume = std::stod(f[6]);
    } catch (const std::exception&) {
      throw std::runtime_error("market_data: " + path + ":" + std::to_string(lineno)
                               + ": a price or the volume is not a number");
    }
    out.push_back(std::move(b));
    if (limit != 0 && out.size() == limit)
      break;
  }
  return out;
}

class market_data : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    auto source = caf::get_or(params(), "source", std::string{"csv"});
    rate_ = caf::get_or(params(), "rate", int64_t{0});
    auto limit = static_cast<uint64_t>(caf::get_or(params(), "bars", int64_t{0}));
    if (source == "csv") {
      bars_ = read_csv(caf::get_or(params(), "file", std::string{"sp500-2000.csv"}),
                       caf::get_or(params(), "symbol", std::string{"SPX"}), limit);
    } else if (source == "synthetic") {
      synthetic(limit == 0 ? 10000 : limit);
    } else {
      throw std::runtime_error("market_data: param source is '" + source
                               + "'; use \"csv\" or \"synthetic\"");
    }
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x)
                          -> caf::result<caf::message> {
      if (x.content().match_elements<tick_atom>())
        tick();
      return caf::message{};
    });
    subscribe<mycelium::deployment_ready>([this](const mycelium::deployment_ready&) {
      if (!started_) {
        started_ = true;
        t0_ = std::chrono::steady_clock::now();
        send(this, tick_atom::value);
      }
    });
  }

private:
  void synthetic(uint64_t n) {
    std::vector<std::string> symbols{"AAA", "BBB"};
    if (auto xs = caf::get_if<caf::config_value::list>(&params(), "symbols")) {
      symbols.clear();
      for (auto& x : *xs)
        if (auto* s = caf::get_if<std::string>(&x))
          symbols.push_back(*s);
    }
    std::mt19937_64 rng{static_cast<uint64_t>(caf::get_or(params(), "seed", int64_t{7}))};
    std::normal_distribution<double> step{0.0, 0.01};
    std::vector<double> px(symbols.size(), 100.0);
    for (uint64_t i = 0; i < n; ++i) {
      auto k = i % symbols.size();
      auto open = px[k];
      px[k] *= 1.0 + step(rng);
      ts::bar b;
      b.symbol = symbols[k];
      b.date = "t" + std::to_string(i / symbols.size());
      b.open = open;
      b.close = px[k];
      b.high = std::max(open, px[k]);
      b.low = std::min(open, px[k]);
      b.volume = 1000;
      bars_.push_back(std::move(b));
    }
  }

  void tick() {
    // Paced: the bars due by now. Unpaced: one bar per message, so that
    // other messages of this service (and the worker's other actors)
    // interleave.
    uint64_t due = sent_ + 1;
    if (rate_ > 0) {
      auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_);
      due = static_cast<uint64_t>(elapsed.count() * rate_) + 1;
    }
    due = std::min<uint64_t>(due, bars_.size());
    // The next tick is asked for before these bars leave: scheduling it
    // wakes CAF's timer thread, and a thread woken on the CPU of the bar's
    // subscriber (a pinned deployment) would delay the bar's handler.
    if (due < bars_.size()) {
      if (rate_ <= 0) {
        send(this, tick_atom::value);
      } else {
        // Woken when the next bar is due, so bars leave one at a time,
        // evenly spaced: a fixed tick would send them in bursts, and a
        // bar's latency would then include the wait behind its
        // predecessor's handlers.
        auto next_due = t0_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::chrono::duration<double>(static_cast<double>(due) / rate_));
        auto wait = next_due - std::chrono::steady_clock::now();
        if (wait <= std::chrono::steady_clock::duration::zero())
          send(this, tick_atom::value);
        else
          delayed_send(this, wait, tick_atom::value);
      }
    }
    while (sent_ < due) {
      auto b = bars_[sent_];
      b.seq = ++sent_;
      b.t_md = now_ns();
      publish(std::move(b));
    }
    if (sent_ == bars_.size())
      publish(ts::session_end{sent_});
  }

  std::vector<ts::bar> bars_;
  int64_t rate_ = 0;
  uint64_t sent_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::time_point t0_{};
};

} // namespace

MYCELIUM_REGISTER_SERVICE("trading.market_data", market_data);
