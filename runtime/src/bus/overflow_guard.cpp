#include "mycelium/bus/overflow_guard.hpp"

#include "mycelium/errc.hpp"

namespace mycelium {

const char* to_string(overflow_policy x) noexcept {
  switch (x) {
    case overflow_policy::block: return "block";
    case overflow_policy::drop_newest: return "drop_newest";
    case overflow_policy::disconnect: return "disconnect";
  }
  return "<invalid overflow_policy>";
}

caf::error parse_overflow_policy(const std::string& text, overflow_policy& out) {
  for (auto p : {overflow_policy::block, overflow_policy::drop_newest,
                 overflow_policy::disconnect})
    if (text == to_string(p)) {
      out = p;
      return caf::none;
    }
  return make_error(errc::config_invalid,
                    "unknown overflow policy '" + text
                      + "': use block, drop_newest or disconnect");
}

overflow_guard::overflow_guard(overflow_policy policy,
                               std::chrono::nanoseconds block_timeout,
                               std::function<void()> on_disconnect)
  : policy_(policy), block_timeout_(block_timeout),
    on_disconnect_(std::move(on_disconnect)) {
}

overflow_guard::verdict
overflow_guard::on_full(bool may_wait,
                        std::chrono::steady_clock::time_point& deadline) noexcept {
  switch (policy_) {
    case overflow_policy::drop_newest:
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return verdict::refuse;
    case overflow_policy::disconnect:
      dropped_.fetch_add(1, std::memory_order_relaxed);
      if (!overflowed_.exchange(true, std::memory_order_acq_rel)) {
        disconnects_.fetch_add(1, std::memory_order_relaxed);
        if (on_disconnect_)
          on_disconnect_();
      }
      return verdict::refuse;
    case overflow_policy::block:
      break;
  }
  if (!may_wait || block_timeout_.count() <= 0) {
    back_pressured_.fetch_add(1, std::memory_order_relaxed);
    return verdict::refuse;
  }
  deadline = std::chrono::steady_clock::now() + block_timeout_;
  return verdict::wait;
}

} // namespace mycelium
