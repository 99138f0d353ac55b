#pragma once

// The clocks of the benchmark programs: steady_clock nanoseconds, and the
// TSC (rdtsc) calibrated against it when the CPU has an invariant TSC.
// `g_tsc` / `g_ns_per_tick` are set once by main() before any measurement;
// afterwards they are only read (from any thread).

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>

#include <x86intrin.h>

namespace mycelium::bench {

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// Whether `ticks()` reads the TSC, and its calibrated period.
inline bool g_tsc = false;
inline double g_ns_per_tick = 1.0;

/// TSC ticks when `g_tsc`, else steady_clock nanoseconds.
inline int64_t ticks() {
  return g_tsc ? static_cast<int64_t>(__rdtsc()) : now_ns();
}

/// Whether /proc/cpuinfo announces constant_tsc and nonstop_tsc.
inline bool cpu_has_invariant_tsc() {
  std::ifstream in{"/proc/cpuinfo"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0)
      return line.find(" constant_tsc") != std::string::npos
             && line.find(" nonstop_tsc") != std::string::npos;
  return false;
}

/// Nanoseconds per TSC tick, measured over 200 ms of steady_clock.
inline double calibrate_tsc() {
  auto n0 = now_ns();
  auto c0 = __rdtsc();
  while (now_ns() - n0 < 200000000) {
  }
  auto n1 = now_ns();
  auto c1 = __rdtsc();
  return static_cast<double>(n1 - n0) / static_cast<double>(c1 - c0);
}

} // namespace mycelium::bench
