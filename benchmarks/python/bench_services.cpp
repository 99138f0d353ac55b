// C++ services of mycelium-bench-py-node, the node binary (with Python
// embedded) that benchmarks/python/python_inprocess.py runs: the C++ ends of
// the Python <-> C++ one-way latencies, and a C++ <-> C++ pair measured the
// same way in the same process, for the baseline. Schema: link_test.
//
// Every one-way sample is "handler entry minus the publisher's stamp", both
// CLOCK_MONOTONIC (steady_clock here, time.monotonic_ns in Python).
#include <chrono>
#include <fstream>
#include <vector>

#include <caf/all.hpp>

#include "link_test.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/actors/service_registry.hpp"

namespace lt = mycelium::linktest;

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

void dump(const std::string& path, const std::vector<uint64_t>& v) {
  std::ofstream f{path};
  for (size_t i = 0; i < v.size(); ++i)
    f << (i == 0 ? "" : " ") << v[i];
  f << "\n";
}

/// Python -> C++: a ping stamped by Python reaches this handler (sample),
/// which answers with a pong stamped here (C++ -> Python). seq 0: counted
/// only, no answer (the publish-call loop). command "dump" writes the
/// samples to param `out` and answers "dumped".
class reflector : public mycelium::service {
public:
  using service::service;
  void on_start() override {
    out_ = caf::get_or(params(), "out", std::string{"reflector.txt"});
    samples_.reserve(1 << 20);
    subscribe<lt::ping>([this](const lt::ping& p) {
      if (p.seq == 0) {
        ++unanswered_;
        return;
      }
      samples_.push_back(now_ns() - p.seq);
      publish(lt::pong{now_ns(), {}});
    });
    subscribe<lt::command>([this](const lt::command& c) {
      if (c.text == "dump") {
        dump(out_, samples_);
        publish(lt::command{"dumped reflector " + std::to_string(unanswered_)});
      }
    });
  }

private:
  std::string out_;
  std::vector<uint64_t> samples_;
  uint64_t unanswered_ = 0;
};

/// The C++ <-> C++ baseline, the same scheme: on command "cpp N" the
/// `cpp.a` side publishes probe(stamp), `cpp.b` records and answers with a
/// chat(stamp), `cpp.a` records and goes on, N times; then "cpp-done".
class side_a : public mycelium::service {
public:
  using service::service;
  void on_start() override {
    out_ = caf::get_or(params(), "out", std::string{"a.txt"});
    subscribe<lt::command>([this](const lt::command& c) {
      if (c.text.rfind("cpp ", 0) == 0) {
        left_ = std::stoull(c.text.substr(4));
        samples_.reserve(left_);
        publish(lt::probe{now_ns()});
      } else if (c.text == "dump") {
        dump(out_, samples_);
        publish(lt::command{"dumped a"});
      }
    });
    subscribe<lt::chat>([this](const lt::chat& x) {
      samples_.push_back(now_ns() - x.seq);
      if (--left_ == 0)
        publish(lt::command{"cpp-done"});
      else
        publish(lt::probe{now_ns()});
    });
  }

private:
  std::string out_;
  std::vector<uint64_t> samples_;
  uint64_t left_ = 0;
};

class side_b : public mycelium::service {
public:
  using service::service;
  void on_start() override {
    out_ = caf::get_or(params(), "out", std::string{"b.txt"});
    samples_.reserve(1 << 20);
    subscribe<lt::probe>([this](const lt::probe& p) {
      samples_.push_back(now_ns() - p.seq);
      publish(lt::chat{"b", now_ns()});
    });
    subscribe<lt::command>([this](const lt::command& c) {
      if (c.text == "dump") {
        dump(out_, samples_);
        publish(lt::command{"dumped b"});
      }
    });
  }

private:
  std::string out_;
  std::vector<uint64_t> samples_;
};

MYCELIUM_REGISTER_SERVICE("bench.reflector", reflector);
MYCELIUM_REGISTER_SERVICE("bench.cpp_a", side_a);
MYCELIUM_REGISTER_SERVICE("bench.cpp_b", side_b);

} // namespace
