#pragma once

// Plumbing shared by the two-process benchmarks (mycelium-bench-links,
// mycelium-bench-shm): errors, CPU pinning, the fatal-signal guard that
// kills the peer process, the round-trip path interface and its statistics,
// and per-process CPU and context-switch counters read from /proc.
// Header-only; everything here is used from the driver's main thread unless
// a comment says otherwise.

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sched.h>
#include <unistd.h>

#include <fmt/format.h>

#include "bench_clock.hpp"
#include "bench_report.hpp"

namespace mycelium::bench {

/// Thrown for anything that makes a measurement impossible; main() reports
/// it and the child_process destructors kill the peer.
struct bench_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A `ticks()` difference in ns, rounded and clamped to u32 (~4.3 s).
inline uint32_t ticks_to_ns(int64_t d) {
  auto ns = static_cast<double>(d) * g_ns_per_tick + 0.5;
  return static_cast<uint32_t>(std::clamp<double>(ns, 0, UINT32_MAX));
}

/// Pins the calling thread (and every thread it creates afterwards) to `cpu`,
/// or to every CPU when `cpu` < 0.
inline void pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  auto n = static_cast<int>(std::thread::hardware_concurrency());
  if (cpu < 0) {
    for (int i = 0; i < std::max(n, 1); ++i)
      CPU_SET(i, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  if (::sched_setaffinity(0, sizeof(set), &set) != 0)
    throw bench_error(fmt::format("sched_setaffinity(cpu {}): {}", cpu, std::strerror(errno)));
}

/// CPU for the driver and the peer in a pinning mode.
inline std::pair<int, int> cpus_of(const std::string& pin) {
  auto n = static_cast<int>(std::thread::hardware_concurrency());
  if (pin == "split")
    return {0, n > 1 ? 1 : 0};
  if (pin == "same")
    return {0, 0};
  return {-1, -1};
}

/// Peer processes to kill when the driver gets SIGINT/SIGTERM.
inline std::mutex g_children_mtx;
inline std::vector<pid_t> g_children;

/// The driver's SIGINT/SIGTERM handler.
inline void on_fatal_signal(int sig) {
  // async-signal-safe: kill the peers, leave
  for (auto p : g_children)
    ::kill(p, SIGKILL);
  ::_exit(128 + sig);
}

/// Keeps a child's pid where on_fatal_signal finds it while `this` lives.
class fatal_signal_guard {
public:
  explicit fatal_signal_guard(pid_t pid) : pid_(pid) {
    std::lock_guard<std::mutex> guard{g_children_mtx};
    g_children.push_back(pid_);
  }
  ~fatal_signal_guard() {
    std::lock_guard<std::mutex> guard{g_children_mtx};
    g_children.erase(std::remove(g_children.begin(), g_children.end(), pid_),
                     g_children.end());
  }
  fatal_signal_guard(const fatal_signal_guard&) = delete;
  fatal_signal_guard& operator=(const fatal_signal_guard&) = delete;

private:
  pid_t pid_;
};

/// One way of doing a ping-pong with the peer.
class rtt_path {
public:
  explicit rtt_path(std::string name) : name_(std::move(name)) {}
  virtual ~rtt_path() = default;
  const std::string& name() const { return name_; }
  virtual void set_payload(const std::vector<uint8_t>& payload) = 0;
  /// Called before and after each chunk of round trips (warm-up or timed),
  /// outside the timed and counted interval: a path that must not run while
  /// others are measured (e.g. a busy-polling link) is set up and torn down
  /// here. No-ops by default.
  virtual void begin_chunk() {}
  virtual void end_chunk() {}
  /// Runs `n` round trips; appends each RTT (ns) to `out` if given; returns
  /// the elapsed ns. Throws bench_error on a wrong answer or a stall.
  virtual int64_t run(size_t n, std::vector<uint32_t>* out) = 0;
  /// Recorded round trips whose echo ran on the driver's CPU, and how many
  /// were checked (0: the path cannot tell).
  std::pair<uint64_t, uint64_t> same_cpu() const { return {same_cpu_, cpu_checked_}; }

protected:
  /// Records one round trip of `dt` ticks into `out` (if recording) and
  /// whether the echo ran on the CPU the driver runs on now.
  void record(std::vector<uint32_t>* out, int64_t dt, uint32_t echo_cpu) {
    if (out == nullptr)
      return;
    out->push_back(ticks_to_ns(dt));
    ++cpu_checked_;
    if (echo_cpu == static_cast<uint32_t>(::sched_getcpu()))
      ++same_cpu_;
  }

  uint64_t same_cpu_ = 0;
  uint64_t cpu_checked_ = 0;

private:
  std::string name_;
};

/// One path's round trips at one size, summarised.
struct rtt_stats {
  uint64_t round_trips = 0;
  double median = 0, p99 = 0, p999 = 0, max = 0, mean = 0; // ns, round trip
  double rt_per_s = 0;
  double switches_per_rt = 0; // context switches of both processes per round trip
  double cpu_ns_per_rt = 0;   // on-CPU time of both processes per round trip
  double same_cpu = -1;       // share of round trips echoed on the driver's CPU (-1: n/a)
};

/// Statistics of the round trips `v` (ns) that took `total_ns` in all.
inline rtt_stats make_stats(std::vector<uint32_t> v, int64_t total_ns) {
  rtt_stats s;
  std::sort(v.begin(), v.end());
  s.round_trips = v.size();
  s.median = pct(v, 0.5);
  s.p99 = pct(v, 0.99);
  s.p999 = pct(v, 0.999);
  s.max = v.empty() ? 0 : v.back();
  double sum = 0;
  for (auto x : v)
    sum += x;
  s.mean = v.empty() ? 0 : sum / static_cast<double>(v.size());
  s.rt_per_s = total_ns > 0
                 ? static_cast<double>(v.size()) * 1e9 / static_cast<double>(total_ns)
                 : 0;
  return s;
}

/// One path's statistics as a JSON object.
inline std::string json_stats(const rtt_stats& s) {
  return fmt::format("{{\"round_trips\": {}, \"median_ns\": {:.0f}, \"p99_ns\": {:.0f}, "
                     "\"p999_ns\": {:.0f}, \"max_ns\": {:.0f}, \"mean_ns\": {:.0f}, "
                     "\"round_trips_per_s\": {:.0f}, \"switches_per_rt\": {:.2f}, "
                     "\"cpu_ns_per_rt\": {:.0f}{}}}",
                     s.round_trips, s.median, s.p99, s.p999, s.max, s.mean, s.rt_per_s,
                     s.switches_per_rt, s.cpu_ns_per_rt,
                     s.same_cpu >= 0 ? fmt::format(", \"same_cpu_share\": {:.4f}", s.same_cpu)
                                     : std::string{});
}

/// Every path's statistics at one payload size.
struct size_result {
  size_t size = 0;
  std::map<std::string, rtt_stats> paths;
  double ratio(const std::string& a, const std::string& b) const {
    auto i = paths.find(a), j = paths.find(b);
    if (i == paths.end() || j == paths.end() || j->second.median <= 0)
      return 0;
    return i->second.median / j->second.median;
  }
};

/// One throughput variant's rounds.
struct tput_variant {
  std::string name;
  std::vector<double> rates; // msg/s per round
  uint64_t messages = 0;
  int64_t total_ns = 0;
  double bytes_per_msg = 0;
  int64_t cpu_ns = 0; // both processes, timed rounds
  double cpu_ns_per_msg() const {
    return messages ? static_cast<double>(cpu_ns) / static_cast<double>(messages) : 0;
  }
  double median() const {
    if (rates.empty())
      return 0;
    auto v = rates;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }
  double min() const { return rates.empty() ? 0 : *std::min_element(rates.begin(), rates.end()); }
  double max() const { return rates.empty() ? 0 : *std::max_element(rates.begin(), rates.end()); }
};

/// ns as µs with one decimal.
inline std::string us(double ns) {
  return fmt::format("{:.1f}", ns / 1000.0);
}

/// A ratio with two decimals, "-" when not known (<= 0).
inline std::string ratio_text(double r) {
  return r > 0 ? fmt::format("{:.2f}", r) : std::string{"-"};
}

/// The `key=value` words of a line (the peer's "ready" line).
inline std::map<std::string, std::string> parse_kv(const std::string& line) {
  std::map<std::string, std::string> kv;
  std::istringstream in{line};
  std::string tok;
  while (in >> tok) {
    auto eq = tok.find('=');
    if (eq != std::string::npos)
      kv[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return kv;
}

/// `n` bytes of a fixed pattern.
inline std::vector<uint8_t> make_payload(size_t n) {
  std::vector<uint8_t> p(n);
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<uint8_t>(i * 131 + 7);
  return p;
}

/// Context switches (voluntary + involuntary) and on-CPU time of every
/// thread of a process, from /proc/PID/task/*/{status,schedstat}.
struct proc_counters {
  int64_t switches = 0;
  int64_t cpu_ns = 0;
};

inline proc_counters read_counters(pid_t pid) {
  proc_counters c;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::ifstream st{e.path() / "status"};
    std::string line;
    while (std::getline(st, line))
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0
          || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        c.switches += std::stoll(line.substr(line.find(':') + 1));
    std::ifstream ss{e.path() / "schedstat"};
    int64_t on_cpu = 0;
    if (ss >> on_cpu)
      c.cpu_ns += on_cpu;
  }
  return c;
}

/// Counters of the driver and the peer process together.
struct pair_counters {
  pid_t peer = -1;
  proc_counters read() const {
    auto a = read_counters(::getpid());
    auto b = read_counters(peer);
    return {a.switches + b.switches, a.cpu_ns + b.cpu_ns};
  }
};

} // namespace mycelium::bench
