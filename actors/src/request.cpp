#include "mycelium/actors/request.hpp"

#include <caf/actor_cast.hpp>
#include <caf/sec.hpp>

#include "mycelium/errc.hpp"

namespace mycelium {

caf::expected<caf::actor> find_responder(const routing_table& table,
                                         uint32_t type_id,
                                         const char* type_name,
                                         const std::string& node) {
  auto* r = bus::lookup(table, type_id);
  if (r == nullptr || !r->responder)
    return make_error(errc::no_responder,
                      std::string{"no service serves requests of type '"}
                        + type_name + "' on node '" + node + "'");
  return caf::actor_cast<caf::actor>(r->responder);
}

caf::error request_error(const caf::error& err, const char* type_name,
                         std::chrono::nanoseconds timeout) {
  if (err == caf::sec::request_timeout)
    return make_error(errc::request_timeout,
                      std::string{"no reply to request '"} + type_name
                        + "' within "
                        + std::to_string(timeout.count() / 1000000) + " ms");
  return err;
}

} // namespace mycelium
