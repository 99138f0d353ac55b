#include "mycelium/actors/node.hpp"

#include <atomic>

#include <caf/actor_system_config.hpp>
#include <caf/config_value.hpp>
#include <caf/exit_reason.hpp>
#include <caf/settings.hpp>

#include "mycelium/actors/log.hpp"

namespace mycelium {

namespace {

/// Says once per process when a node runs on CAF's default work-stealing
/// settings, whose idle workers sleep 50 us between polls without being woken
/// by new work: nothing fails, every hop through the pool just gets slower.
void warn_about_scheduler(caf::actor_system& sys, const std::string& node) {
  static std::atomic<bool> warned{false};
  auto policy = caf::get_or(sys.config(), "scheduler.policy", caf::atom("stealing"));
  auto moderate = caf::get_or(sys.config(), "work-stealing.moderate-poll-attempts",
                              int64_t{500});
  if (policy != caf::atom("stealing") || moderate == 0 || warned.exchange(true))
    return;
  log(log_level::warning, node,
      "the actor system runs CAF's default work-stealing settings: idle workers "
      "sleep 50 us between polls and are not woken by new work (~250 us per "
      "round trip over TCP); create it from mycelium::system_config, or set "
      "work-stealing.moderate-poll-attempts=0 (docs/configuration.md)");
}

} // namespace

node::node(caf::actor_system& sys, std::string name)
  : sys_(sys), name_(std::move(name)),
    bus_(std::make_shared<mycelium::bus>(name_)),
    supervisor_(spawn_supervisor(sys, name_)) {
  warn_about_scheduler(sys, name_);
}

node::~node() {
  stop();
}

caf::expected<caf::actor> node::start(const std::string& type,
                                      caf::settings params,
                                      std::string instance,
                                      restart_policy policy, placement where) {
  auto factory = service_registry::global().find(type);
  if (!factory) {
    std::string known;
    for (auto& n : service_registry::global().names())
      known += (known.empty() ? "" : ", ") + n;
    return make_error(errc::unknown_service,
                      "no service type '" + type + "' is registered (known: "
                        + (known.empty() ? "none" : known) + ")");
  }
  if (instance.empty())
    instance = type;
  return start_spec(type, std::move(factory), std::move(instance),
                    std::move(params), policy, where);
}

caf::expected<caf::actor> node::start(service_factory factory,
                                      std::string instance,
                                      caf::settings params,
                                      restart_policy policy, placement where) {
  auto type = instance;
  return start_spec(std::move(type), std::move(factory), std::move(instance),
                    std::move(params), policy, where);
}

caf::expected<caf::actor> node::start_spec(std::string type,
                                           service_factory factory,
                                           std::string instance,
                                           caf::settings params,
                                           restart_policy policy,
                                           placement where) {
  if (where == placement::loop && !sys_.has_middleman())
    return make_error(errc::config_invalid,
                      "service '" + instance + "' on node '" + name_
                        + "': placement loop runs handlers on CAF's I/O loop, "
                          "but this actor system has no middleman: load it "
                          "(mycelium::transports::load_io_loop(cfg)) before "
                          "creating the system, or use placement pool");
  auto spec = std::make_shared<child_spec>();
  spec->type = std::move(type);
  spec->context = service_context{std::move(instance), bus_, std::move(params),
                                  where, handler_budget_, schema_};
  spec->factory = std::move(factory);
  spec->policy = policy;
  caf::expected<caf::actor> result{caf::error{}};
  caf::scoped_actor self{sys_};
  self->request(supervisor_, caf::infinite, start_child_atom::value,
                child_spec_ptr{std::move(spec)})
    .receive([&](caf::actor& a) { result = std::move(a); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

caf::error node::await_stopped(std::chrono::nanoseconds timeout) {
  if (stopped_)
    return exit_reason_;
  caf::scoped_actor self{sys_};
  self->monitor(supervisor_);
  caf::error result = caf::sec::request_timeout;
  self->receive(
    [&](caf::down_msg& dm) {
      result = dm.reason;
      exit_reason_ = dm.reason;
      stopped_ = true;
    },
    caf::after(timeout) >> [] {});
  return result;
}

void node::stop(std::chrono::nanoseconds timeout) {
  if (stopped_)
    return;
  caf::scoped_actor self{sys_};
  self->monitor(supervisor_);
  self->send_exit(supervisor_, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive(
    [&](caf::down_msg& dm) {
      exit_reason_ = dm.reason;
      down = true;
    },
    caf::after(timeout) >> [] {});
  if (!down)
    log(log_level::error, name_,
        "services of node '" + name_ + "' did not stop within "
          + std::to_string(timeout.count() / 1000000)
          + " ms; a handler may be blocked");
  stopped_ = true;
}

} // namespace mycelium
