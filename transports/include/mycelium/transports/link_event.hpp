#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

#include "mycelium/wire/frame_header.hpp"

namespace mycelium::transports {

/// Published on a node's own bus whenever one of its links comes up or goes
/// down, so that services can react (`subscribe<link_event>`). Node-local: it
/// never crosses a link. Covers every link kind.
struct link_event {
  static constexpr uint32_t type_id = wire::first_local_type_id + 1;
  static constexpr const char* type_name = "mycelium.link_event";

  std::string link;   ///< the link's configured name
  std::string kind;   ///< "unix", "tcp" or "shm"
  std::string peer;   ///< "node 'x' service 'y' (pid n)"
  bool up = false;    ///< true: established; false: this connection ended
  uint8_t reason = 0; ///< an errc value when down (0: a clean goodbye)
  std::string text;   ///< why it went down, as in `link_stats::last_error`
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, link_event& x) {
  return f(caf::meta::type_name("mycelium.link_event"), x.link, x.kind, x.peer,
           x.up, x.reason, x.text);
}

} // namespace mycelium::transports
