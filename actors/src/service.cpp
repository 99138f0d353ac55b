#include "mycelium/actors/service.hpp"

#include <cstdlib>
#include <exception>
#include <typeinfo>

#include <cxxabi.h>

#include "mycelium/actors/log.hpp"

namespace mycelium {

service::service(caf::actor_config& cfg, service_context ctx)
  : super(cfg, std::move(ctx)) {
  set_exception_handler([this](caf::scheduled_actor*, std::exception_ptr& eptr) {
    std::string what;
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      int status = 0;
      char* pretty = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
      what = std::string{status == 0 && pretty ? pretty : typeid(e).name()} + ": "
             + e.what();
      std::free(pretty);
    } catch (...) {
      what = "unknown exception";
    }
    auto& core = participant_core();
    core.counters().handler_errors.fetch_add(1, std::memory_order_relaxed);
    auto text = "service '" + service_name() + "' "
                + (core.started() ? "handler" : "on_start") + " threw " + what;
    log(log_level::error, bus().node_name() + "/" + service_name(), text);
    return make_error(errc::service_failed, std::move(text));
  });
}

service::~service() = default;

void service::on_start() {
  // nop
}

void service::on_stop() {
  // nop
}

caf::behavior service::make_behavior() {
  on_start();
  participant_core().mark_started();
  return participant_core().behavior();
}

void service::on_exit() {
  try {
    on_stop();
  } catch (const std::exception& e) {
    log(log_level::error, bus().node_name() + "/" + service_name(),
        std::string{"on_stop threw: "} + e.what());
  }
  // Unsubscribe here, not only in the bus's attach_functor: CAF runs
  // attachables newest first, so a monitor attached after the subscription
  // would report this actor down while the bus still routed to it. The
  // functor's second removal is a no-op. Also breaks reference cycles.
  participant_core().leave();
}

} // namespace mycelium
