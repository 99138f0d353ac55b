#include "mycelium/actors/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace mycelium {

namespace {

std::atomic<log_tap> the_tap{nullptr};

} // namespace

void set_log_tap(log_tap tap) noexcept {
  the_tap.store(tap, std::memory_order_release);
}

void log(log_level level, const std::string& who, const std::string& text) {
  const char* lv = level == log_level::error     ? "ERROR"
                   : level == log_level::warning ? "WARN"
                                                 : "INFO";
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  std::string line = std::string{ts} + " mycelium " + lv + " [" + who + "] " + text + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  if (auto tap = the_tap.load(std::memory_order_acquire))
    tap(who, line);
}

} // namespace mycelium
