#include "mycelium/transports/loop/idle_strategy.hpp"

#include "mycelium/errc.hpp"

namespace mycelium::transports {

const char* to_string(wait_mode x) noexcept {
  switch (x) {
    case wait_mode::busy_poll: return "busy_poll";
    case wait_mode::spin_then_block: return "spin_then_block";
    case wait_mode::block: return "block";
  }
  return "<invalid wait_mode>";
}

caf::error parse_wait_mode(const std::string& text, wait_mode& out) {
  for (auto m : {wait_mode::busy_poll, wait_mode::spin_then_block, wait_mode::block})
    if (text == to_string(m)) {
      out = m;
      return caf::none;
    }
  return make_error(errc::config_invalid,
                    "unknown wait mode '" + text
                      + "': use busy_poll, spin_then_block or block");
}

idle_strategy idle_strategy::merge(const idle_strategy& a,
                                   const idle_strategy& b) noexcept {
  if (a.mode == wait_mode::busy_poll || b.mode == wait_mode::busy_poll)
    return busy();
  if (a.mode == wait_mode::spin_then_block && b.mode == wait_mode::spin_then_block)
    return spinning(std::max(a.spin, b.spin));
  if (a.mode == wait_mode::spin_then_block)
    return a;
  if (b.mode == wait_mode::spin_then_block)
    return b;
  return blocking();
}

std::string idle_strategy::to_string() const {
  if (mode != wait_mode::spin_then_block)
    return transports::to_string(mode);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(spin).count();
  return "spin_then_block(" + std::to_string(us) + "us)";
}

} // namespace mycelium::transports
