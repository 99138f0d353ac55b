#include "mycelium/actors/service.hpp"

#include <cstdlib>
#include <exception>
#include <typeinfo>

#include <cxxabi.h>


#include "mycelium/actors/log.hpp"

namespace mycelium {

service::service(caf::actor_config& cfg, service_context ctx)
  : event_based_actor(cfg), ctx_(std::move(ctx)) {
  counters_ = ctx_.bus->counters_of(ctx_.name);
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
    counters_->handler_errors.fetch_add(1, std::memory_order_relaxed);
    auto text = "service '" + ctx_.name + "' "
                + (started_ ? "handler" : "on_start") + " threw " + what;
    log(log_level::error, ctx_.bus->node_name() + "/" + ctx_.name, text);
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
  started_ = true;
  return build_behavior();
}

void service::on_exit() {
  try {
    on_stop();
  } catch (const std::exception& e) {
    log(log_level::error, ctx_.bus->node_name() + "/" + ctx_.name,
        std::string{"on_stop threw: "} + e.what());
  }
  // Unsubscribe here, not only in the bus's attach_functor: CAF runs
  // attachables newest first, so a monitor attached after the subscription
  // would report this actor down while the bus still routed to it. The
  // functor's second removal is a no-op. Also breaks reference cycles.
  for (auto& h : handlers_)
    if (h.sub)
      ctx_.bus->unsubscribe(h.sub);
  handlers_.clear();
  cached_route_ = nullptr;
  routes_.reset();
}

void service::add_handler(uint32_t type_id, subscription_ptr sub,
                          caf::message_handler h) {
  for (auto i = handlers_.begin(); i != handlers_.end(); ++i)
    if (i->type_id == type_id && (i->sub != nullptr) == (sub != nullptr)) {
      if (i->sub)
        ctx_.bus->unsubscribe(i->sub);
      handlers_.erase(i);
      break;
    }
  handlers_.push_back({type_id, std::move(sub), std::move(h)});
  if (started_)
    become(build_behavior());
}

void service::remove_handler(uint32_t type_id) {
  for (auto i = handlers_.begin(); i != handlers_.end(); ++i)
    if (i->type_id == type_id && i->sub) {
      ctx_.bus->unsubscribe(i->sub);
      handlers_.erase(i);
      if (started_)
        become(build_behavior());
      return;
    }
}

caf::behavior service::build_behavior() {
  // Subscriptions first: they are the hot path; `started` comes once.
  caf::message_handler started{[](started_atom) { return caf::atom("ok"); }};
  if (handlers_.empty())
    return caf::behavior{started};
  auto all = handlers_.front().handler;
  for (size_t i = 1; i < handlers_.size(); ++i)
    all = all.or_else(handlers_[i].handler);
  return caf::behavior{all.or_else(started)};
}


} // namespace mycelium
