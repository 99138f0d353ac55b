#pragma once

#include <chrono>
#include <string>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "mycelium/bus/bus.hpp"

/// The two halves of request/reply that `service::request` (asynchronous)
/// and `node::request` (blocking) share. Pure functions; thread-safe.
namespace mycelium {

/// The actor serving requests of `type_id` in `table`, or
/// `errc::no_responder` naming the type and the node.
caf::expected<caf::actor> find_responder(const routing_table& table,
                                         uint32_t type_id,
                                         const char* type_name,
                                         const std::string& node);

/// CAF's `request_timeout` becomes `errc::request_timeout` naming the request
/// type and the timeout; any other error passes through.
caf::error request_error(const caf::error& err, const char* type_name,
                         std::chrono::nanoseconds timeout);

} // namespace mycelium
