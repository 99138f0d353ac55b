#include "mycelium/actors/supervisor.hpp"

#include <deque>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>

#include "mycelium/actors/log.hpp"
#include "mycelium/actors/service.hpp"
#include "mycelium/bus/bus.hpp"

namespace mycelium {

namespace {

using clock_type = std::chrono::steady_clock;

struct supervisor_state {
  struct child {
    child_spec_ptr spec;
    caf::actor handle;
    std::deque<clock_type::time_point> failures;
    bool started = false;
    caf::response_promise start_promise; ///< answered once on_start ran
  };
  std::string node;
  std::map<caf::actor_addr, child> children;
  bool stopping = false;
  caf::error stop_reason;
  static inline const char* name = "mycelium.supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

std::string who(const supervisor_actor* self, const child_spec& spec) {
  return self->state.node + "/" + spec.context.name;
}

void spawn_child(supervisor_actor* self, child_spec_ptr spec,
                 std::deque<clock_type::time_point> failures,
                 caf::response_promise rp) {
  caf::actor child;
  try {
    child = spec->factory(self->system(), spec->context);
  } catch (const std::exception& e) {
    auto text = "service '" + spec->context.name + "' (type '" + spec->type
                + "'): constructor threw: " + e.what();
    log(log_level::error, who(self, *spec), text);
    if (rp.pending())
      rp.deliver(make_error(errc::service_failed, text));
    return;
  }
  self->monitor(child);
  auto addr = child.address();
  self->state.children[addr] = {spec, child, std::move(failures), false, rp};
  self->request(child, caf::infinite, started_atom::value)
    .then(
      [self, addr, rp, child](caf::atom_value) mutable {
        auto i = self->state.children.find(addr);
        if (i != self->state.children.end())
          i->second.started = true;
        if (rp.pending())
          rp.deliver(child);
      },
      [](caf::error&) {
        // The child died before finishing on_start: the down handler answers
        // the start promise with the real exit reason.
      });
}

void escalate(supervisor_actor* self, const child_spec& spec,
              const caf::error& last) {
  auto text = "service '" + spec.context.name + "' failed "
              + std::to_string(spec.policy.max_restarts + 1) + " times within "
              + std::to_string(spec.policy.window.count())
              + " ms (restart budget " + std::to_string(spec.policy.max_restarts)
              + "); escalating, node '" + self->state.node
              + "' stops its services. Last failure: " + render(last);
  log(log_level::error, who(self, spec), text);
  auto reason = make_error(errc::escalated, text);
  self->state.stopping = true;
  self->state.stop_reason = reason;
  for (auto& kv : self->state.children)
    self->send_exit(kv.second.handle, reason);
  if (self->state.children.empty())
    self->quit(reason);
}

caf::behavior supervisor_impl(supervisor_actor* self, std::string node) {
  self->state.node = std::move(node);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Stop all children, then terminate once the last one is down.
    self->state.stopping = true;
    self->state.stop_reason = msg.reason;
    for (auto& kv : self->state.children)
      self->send_exit(kv.second.handle, msg.reason);
    if (self->state.children.empty())
      self->quit(msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.children.find(dm.source);
    if (i == st.children.end())
      return;
    auto entry = std::move(i->second);
    st.children.erase(i);
    if (st.stopping) {
      if (st.children.empty())
        self->quit(st.stop_reason);
      return;
    }
    if (!dm.reason || dm.reason == caf::exit_reason::normal
        || dm.reason == caf::exit_reason::user_shutdown)
      return; // a normal stop is not restarted
    if (!entry.started) {
      // A start failure is reported to whoever started it, not restarted.
      if (entry.start_promise.pending())
        entry.start_promise.deliver(make_error(
          errc::service_failed, "service '" + entry.spec->context.name
                                  + "' failed to start: " + render(dm.reason)));
      return;
    }
    auto& spec = *entry.spec;
    auto now = clock_type::now();
    while (!entry.failures.empty()
           && now - entry.failures.front() > spec.policy.window)
      entry.failures.pop_front();
    entry.failures.push_back(now);
    if (entry.failures.size() > spec.policy.max_restarts) {
      escalate(self, spec, dm.reason);
      return;
    }
    spec.context.bus->counters_of(spec.context.name)
      ->restarts.fetch_add(1, std::memory_order_relaxed);
    log(log_level::warning, who(self, spec),
        "restarting service '" + spec.context.name + "' ("
          + std::to_string(entry.failures.size()) + " of "
          + std::to_string(spec.policy.max_restarts) + " restarts within "
          + std::to_string(spec.policy.window.count())
          + " ms) after: " + render(dm.reason));
    spawn_child(self, entry.spec, std::move(entry.failures),
                caf::response_promise{});
  });
  return {
    [self](start_child_atom, child_spec_ptr spec) -> caf::result<caf::actor> {
      if (self->state.stopping)
        return make_error(errc::escalated, "node '" + self->state.node
                                             + "' is stopping");
      auto rp = self->make_response_promise();
      spawn_child(self, std::move(spec), {}, rp);
      return caf::delegated<caf::actor>{};
    },
  };
}

} // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, std::string node_name) {
  return sys.spawn(supervisor_impl, std::move(node_name));
}

} // namespace mycelium
