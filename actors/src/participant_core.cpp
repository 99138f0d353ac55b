#include "mycelium/actors/detail/participant_core.hpp"

#include <ctime>

#include "mycelium/actors/log.hpp"

namespace mycelium::detail {

participant_core::participant_core(service_context ctx)
  : ctx_(std::move(ctx)), routes_(ctx_.bus.get()) {
  counters_ = ctx_.bus->counters_of(ctx_.name);
}

participant_core::~participant_core() = default;

bool participant_core::add_handler(uint32_t type_id, subscription_ptr sub,
                                   caf::message_handler h, direct_handler direct) {
  for (auto i = handlers_.begin(); i != handlers_.end(); ++i)
    if (i->type_id == type_id && (i->sub != nullptr) == (sub != nullptr)) {
      if (i->sub)
        ctx_.bus->unsubscribe(i->sub);
      handlers_.erase(i);
      break;
    }
  handlers_.push_back({type_id, std::move(sub), std::move(h), std::move(direct)});
  return started_;
}

bool participant_core::run_direct(uint32_t type_id, const void* value) {
  if (in_direct_ || !started_ || failure_ != nullptr)
    return false;
  for (auto& h : handlers_)
    if (h.type_id == type_id && h.sub && h.direct) {
      in_direct_ = true;
      try {
        h.direct(value);
      } catch (...) {
        failure_ = std::current_exception();
      }
      in_direct_ = false;
      return true;
    }
  return false;
}

bool participant_core::remove_handler(uint32_t type_id) {
  for (auto i = handlers_.begin(); i != handlers_.end(); ++i)
    if (i->type_id == type_id && i->sub) {
      ctx_.bus->unsubscribe(i->sub);
      handlers_.erase(i);
      return started_;
    }
  return false;
}

caf::behavior participant_core::behavior() const {
  // Subscriptions first: they are the hot path; `started` comes once.
  auto* self = const_cast<participant_core*>(this);
  caf::message_handler started{
    [](started_atom) { return caf::atom("ok"); },
    [self](direct_wake_atom) {
      if (auto failure = std::move(self->failure_)) {
        self->failure_ = nullptr;
        std::rethrow_exception(failure); // CAF's exception handler takes it
      }
    }};
  if (handlers_.empty())
    return caf::behavior{started};
  auto all = handlers_.front().handler;
  for (size_t i = 1; i < handlers_.size(); ++i)
    all = all.or_else(handlers_[i].handler);
  return caf::behavior{all.or_else(started)};
}

void participant_core::leave() {
  for (auto& h : handlers_)
    if (h.sub)
      ctx_.bus->unsubscribe(h.sub);
  handlers_.clear();
  routes_.reset();
}

std::chrono::nanoseconds participant_core::budget_clock() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

void participant_core::over_budget(std::chrono::nanoseconds took,
                                   const char* type_name) {
  counters_->slow_handlers.fetch_add(1, std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  if (now - last_budget_log_ < std::chrono::seconds{1}) {
    ++unlogged_overruns_;
    return;
  }
  using std::chrono::duration_cast;
  using us = std::chrono::microseconds;
  auto text = "handler of '" + std::string{type_name} + "' ran "
              + std::to_string(duration_cast<us>(took).count())
              + " us on the I/O loop, over its budget of "
              + std::to_string(duration_cast<us>(ctx_.handler_budget).count())
              + " us: links and loop services of node '" + ctx_.bus->node_name()
              + "' stalled meanwhile (place the service on the pool, or raise "
                "handler_budget)";
  if (unlogged_overruns_ > 0)
    text += "; " + std::to_string(unlogged_overruns_)
            + " more overruns in the last second were only counted";
  log(log_level::warning, ctx_.bus->node_name() + "/" + ctx_.name, text);
  last_budget_log_ = now;
  unlogged_overruns_ = 0;
}

} // namespace mycelium::detail
