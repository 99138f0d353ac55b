// C++ services of mycelium-py-host-node, the node binary that embeds Python
// for the in-process tests (tests/python/test_embedded.py): they sit beside
// Python services on one bus, with the link_test schema.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <vector>

#include <caf/all.hpp>

#include "link_test.hpp"
#include "mycelium/actors/deployment_ready.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"

namespace lt = mycelium::linktest;

namespace {

/// Answers every ping with a pong of the same content.
class echo : public mycelium::service {
public:
  using service::service;
  void on_start() override {
    subscribe<lt::ping>([this](const lt::ping& p) { publish(lt::pong{p.seq, p.payload}); });
  }
};

/// Serves report_request with the number of chats it has seen.
class reporter : public mycelium::service {
public:
  using service::service;
  void on_start() override {
    subscribe<lt::chat>([this](const lt::chat&) { ++chats_; });
    if (auto err = serve<lt::report_request>([this](const lt::report_request& r) {
          lt::report x;
          x.token = r.token;
          x.chats = chats_;
          return x;
        }))
      throw std::runtime_error(caf::to_string(err));
  }

private:
  uint64_t chats_ = 0;
};

/// The GIL test's driver: once the node is ready, ping-pongs `rounds` times
/// with `echo` (C++ to C++ through the bus) for a baseline, asks the Python
/// service `burner` to compute for a while (command "burn"), ping-pongs
/// again while it computes (after its "burning"), and writes the medians
/// and p99s of both phases, and whether phase 2 ended before "burned", as
/// one JSON line to param `out`. Then it quits.
class pinger : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    rounds_ = static_cast<size_t>(caf::get_or(params(), "rounds", int64_t{2000}));
    out_ = caf::get_or(params(), "out", std::string{"pinger.json"});
    subscribe<mycelium::deployment_ready>([this](const mycelium::deployment_ready&) {
      if (phase_ == 0) {
        phase_ = 1;
        next();
      }
    });
    subscribe<lt::pong>([this](const lt::pong&) {
      auto took = std::chrono::steady_clock::now() - sent_at_;
      (phase_ == 1 ? base_ : busy_).push_back(
        std::chrono::duration<double, std::micro>(took).count());
      next();
    });
    subscribe<lt::command>([this](const lt::command& c) {
      if (c.text == "burning" && phase_ == 2) {
        phase_ = 3;
        next();
      } else if (c.text == "burned") {
        burned_ = true;
        if (phase_ == 4)
          finish();
      }
    });
  }

private:
  void next() {
    auto& v = phase_ == 1 ? base_ : busy_;
    if (phase_ == 1 && v.size() == rounds_) {
      phase_ = 2;
      publish(lt::command{"burn"});
      return;
    }
    if (phase_ == 3 && v.size() == rounds_) {
      phase_ = 4;
      overlapped_ = !burned_;
      if (burned_)
        finish();
      return;
    }
    sent_at_ = std::chrono::steady_clock::now();
    publish(lt::ping{seq_++, {}});
  }

  static double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
  }

  void finish() {
    std::ofstream f{out_};
    f << "{\"base_p50\":" << percentile(base_, 0.5) << ",\"base_p99\":" << percentile(base_, 0.99)
      << ",\"busy_p50\":" << percentile(busy_, 0.5) << ",\"busy_p99\":" << percentile(busy_, 0.99)
      << ",\"rounds\":" << rounds_ << ",\"overlapped\":" << (overlapped_ ? "true" : "false")
      << "}\n";
    f.close();
    quit();
  }

  size_t rounds_ = 0;
  std::string out_;
  int phase_ = 0;
  uint64_t seq_ = 1;
  bool burned_ = false;
  bool overlapped_ = false;
  std::chrono::steady_clock::time_point sent_at_{};
  std::vector<double> base_;
  std::vector<double> busy_;
};

MYCELIUM_REGISTER_SERVICE("cpp.echo", echo);
MYCELIUM_REGISTER_SERVICE("cpp.reporter", reporter);
MYCELIUM_REGISTER_SERVICE("cpp.pinger", pinger);

} // namespace
