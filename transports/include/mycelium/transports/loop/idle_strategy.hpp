#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/error.hpp>

namespace mycelium::transports {

/// How a waiting thread idles when it found no work: the node's I/O loop
/// between turns, and the raw ring waiter of the benchmarks.
enum class wait_mode : uint8_t {
  busy_poll,       ///< never sleeps: one CPU per loop, lowest latency
  spin_then_block, ///< spins for `idle_strategy::spin`, then sleeps
  block,           ///< sleeps at once until an event (socket, doorbell, post)
};

/// "busy_poll", "spin_then_block" or "block".
const char* to_string(wait_mode x) noexcept;

/// Parses the names above; `config_invalid` naming the accepted values else.
caf::error parse_wait_mode(const std::string& text, wait_mode& out);

/// What the I/O loop does after a turn without work. Links and services ask
/// for one; the loop follows the most eager of all requests (see `merge`).
/// Plain data.
struct idle_strategy {
  wait_mode mode = wait_mode::block;
  /// How long `spin_then_block` keeps polling after the last work before it
  /// sleeps. A duration, not a number of turns: a turn's cost differs by a
  /// factor of ten between an idle loop and one with many pollers.
  std::chrono::nanoseconds spin{std::chrono::microseconds{100}};

  static idle_strategy busy() noexcept { return {wait_mode::busy_poll, {}}; }
  static idle_strategy blocking() noexcept { return {wait_mode::block, {}}; }
  static idle_strategy spinning(std::chrono::nanoseconds d) noexcept {
    return {wait_mode::spin_then_block, d};
  }

  /// The more eager of `a` and `b`: busy-poll beats spinning, a longer spin
  /// beats a shorter one, spinning beats blocking.
  static idle_strategy merge(const idle_strategy& a, const idle_strategy& b) noexcept;

  /// "busy_poll", "spin_then_block(100us)" or "block".
  std::string to_string() const;
};

} // namespace mycelium::transports
