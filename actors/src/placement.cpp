#include "mycelium/actors/placement.hpp"

#include "mycelium/errc.hpp"

namespace mycelium {

const char* to_string(placement x) noexcept {
  switch (x) {
    case placement::pool: return "pool";
    case placement::loop: return "loop";
  }
  return "<invalid placement>";
}

caf::error parse_placement(const std::string& text, placement& out) {
  if (text == "pool")
    out = placement::pool;
  else if (text == "loop")
    out = placement::loop;
  else
    return make_error(errc::config_invalid,
                      "unknown placement '" + text + "': use pool or loop");
  return caf::none;
}

} // namespace mycelium
