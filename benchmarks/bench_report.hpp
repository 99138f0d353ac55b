#pragma once

// Small helpers shared by the benchmark programs: machine facts for the
// report header, JSON string quoting, human-readable sizes and rates, and
// percentiles.
// Header-only; not thread-safe where it reads /proc (call from main).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/utsname.h>

#include <caf/config.hpp>
#include <fmt/format.h>

namespace mycelium::bench {

/// The value after ':' of the first line of `file` starting with `prefix`
/// (e.g. "model name" in /proc/cpuinfo), or "unknown".
inline std::string read_first_line_with(const char* file, const char* prefix) {
  std::ifstream in{file};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) {
        auto v = line.substr(pos + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
      }
    }
  return "unknown";
}

inline std::string loadavg() {
  std::ifstream in{"/proc/loadavg"};
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

inline std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) < 0x20)
      continue;
    out += c;
  }
  return out + "\"";
}

/// The machine facts every report's JSON "machine" object starts with (CPU,
/// hardware threads, kernel, compiler, CAF version, build type), as
/// comma-separated fields without braces; callers append their own.
inline std::string json_machine_fields() {
  utsname u{};
  uname(&u);
  std::string o;
  o += "\"cpu\": " + json_str(read_first_line_with("/proc/cpuinfo", "model name"));
  o += ", \"hardware_threads\": " + std::to_string(std::thread::hardware_concurrency());
  o += ", \"kernel\": " + json_str(std::string{u.sysname} + " " + u.release);
  o += ", \"compiler\": " + json_str("g++ " __VERSION__);
  o += ", \"caf_version\": " + std::to_string(CAF_VERSION);
#ifdef NDEBUG
  o += ", \"build\": \"release (NDEBUG)\"";
#else
  o += ", \"build\": \"debug (assertions on)\"";
#endif
  return o;
}

inline std::string human_size(size_t n) {
  if (n >= 1024 && n % 1024 == 0)
    return fmt::format("{} KiB", n / 1024);
  return fmt::format("{} B", n);
}

inline std::string rate(double x) {
  if (x >= 1e6)
    return fmt::format("{:.2f} M", x / 1e6);
  if (x >= 1e3)
    return fmt::format("{:.1f} k", x / 1e3);
  return fmt::format("{:.0f}", x);
}

/// The `p`-quantile (0 < p <= 1, nearest rank) of ascending `sorted`; 0 if empty.
inline double pct(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty())
    return 0;
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

} // namespace mycelium::bench
