#include "mycelium/bus/bus.hpp"

#include <algorithm>
#include <map>

#include <caf/abstract_actor.hpp>
#include <caf/attachable.hpp>

namespace mycelium {

subscription::subscription(caf::strong_actor_ptr who,
                           std::shared_ptr<detail::topic_counters> t,
                           std::shared_ptr<detail::service_counters> s)
  : subscriber(std::move(who)), topic(std::move(t)), service(std::move(s)) {
}

subscription::~subscription() {
  // Last reference gone: no publisher can bump `enqueued` any more and the
  // subscriber has stopped handling (it releases its reference in on_exit).
  auto enq = enqueued.load(std::memory_order_acquire);
  auto del = delivered.load(std::memory_order_acquire);
  auto dropped = enq >= del ? enq - del : 0;
  topic->retired_enqueued.fetch_add(enq, std::memory_order_relaxed);
  topic->retired_delivered.fetch_add(del, std::memory_order_relaxed);
  topic->retired_dropped.fetch_add(dropped, std::memory_order_relaxed);
  if (service) {
    service->retired_delivered.fetch_add(del, std::memory_order_relaxed);
    service->retired_dropped.fetch_add(dropped, std::memory_order_relaxed);
  }
}

struct bus::state {
  mutable std::mutex mtx;
  std::atomic<uint64_t> version{1};
  std::map<uint32_t, std::shared_ptr<detail::topic_counters>> topics;
  std::map<uint32_t, std::vector<subscription_ptr>> subs;
  std::map<uint32_t, caf::strong_actor_ptr> responders;
  std::map<std::string, std::shared_ptr<detail::service_counters>> services;
  std::map<uint64_t, std::shared_ptr<std::function<void()>>> watchers;
  uint64_t next_watch_id = 1;
  /// Removed subscriptions that a stale snapshot may still reference; read
  /// by the statistics so that no count disappears in between.
  std::vector<std::weak_ptr<subscription>> limbo;
  routing_table_ptr table = std::make_shared<routing_table>();

  std::shared_ptr<detail::topic_counters> topic(uint32_t id,
                                                const std::string& name) {
    auto& t = topics[id];
    if (!t)
      t = std::make_shared<detail::topic_counters>(id, name);
    return t;
  }

  void rebuild() {
    auto t = std::make_shared<routing_table>();
    for (auto& [id, tc] : topics) {
      auto& r = t->routes[id];
      r.topic = tc.get();
      t->topics_alive.push_back(tc);
      if (auto i = subs.find(id); i != subs.end())
        for (auto& s : i->second) {
          r.subscribers.push_back(s.get());
          t->keep_alive.push_back(s);
        }
      if (auto i = responders.find(id); i != responders.end())
        r.responder = i->second;
    }
    table = std::move(t);
    version.fetch_add(1, std::memory_order_acq_rel);
  }

  /// Runs the watchers; call without holding `mtx`.
  void notify() {
    std::vector<std::shared_ptr<std::function<void()>>> fns;
    {
      std::lock_guard<std::mutex> guard{mtx};
      for (auto& kv : watchers)
        fns.push_back(kv.second);
    }
    for (auto& f : fns)
      (*f)();
  }

  /// Returns whether `sub` was still subscribed.
  bool remove(const subscription_ptr& sub) {
    auto i = subs.find(sub->topic->type_id);
    if (i == subs.end())
      return false;
    auto& v = i->second;
    auto j = std::find(v.begin(), v.end(), sub);
    if (j == v.end())
      return false;
    v.erase(j);
    limbo.erase(std::remove_if(limbo.begin(), limbo.end(),
                               [](auto& w) { return w.expired(); }),
                limbo.end());
    limbo.push_back(sub);
    rebuild();
    return true;
  }
};

bus::bus(std::string node_name)
  : node_name_(std::move(node_name)), state_(std::make_shared<state>()),
    version_(&state_->version) {
}

bus::~bus() {
  // Drop the strong actor references held by the routing table.
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->watchers.clear();
  state_->subs.clear();
  state_->responders.clear();
  state_->table = std::make_shared<routing_table>();
}

subscription_ptr bus::subscribe(uint32_t type_id, const std::string& type_name,
                                const caf::strong_actor_ptr& who,
                                const std::string& service_name,
                                mycelium::port* direct) {
  return add_subscription(type_id, type_name, who, service_name, direct, nullptr,
                          false);
}

subscription_ptr bus::subscribe_link(uint32_t type_id,
                                     const std::string& type_name,
                                     const caf::strong_actor_ptr& link,
                                     std::shared_ptr<mycelium::port> port,
                                     const std::string& link_name) {
  auto* raw = port.get();
  return add_subscription(type_id, type_name, link, link_name, raw, std::move(port),
                          true);
}

namespace {

/// Ends a subscription when its actor terminates. Detached again by an
/// explicit `unsubscribe`: otherwise a long-lived actor that subscribes and
/// unsubscribes in a loop would pile one attachable per cycle on itself.
class subscription_guard : public caf::attachable {
public:
  /// Token subtype of these attachables ("MYSB"; CAF's own are 0..3).
  static constexpr size_t token_type = 0x4D595342;

  subscription_guard(std::weak_ptr<void> state, std::weak_ptr<subscription> sub,
                     void (*remove)(const std::shared_ptr<void>&,
                                    const std::shared_ptr<subscription>&))
    : state_(std::move(state)), sub_(std::move(sub)), raw_(sub_.lock().get()),
      remove_(remove) {
  }

  void actor_exited(const caf::error&, caf::execution_unit*) override {
    auto st = state_.lock();
    auto s = sub_.lock();
    if (st && s)
      remove_(st, s);
  }

  bool matches(const token& what) override {
    return what.subtype == token_type && what.ptr == raw_;
  }

private:
  std::weak_ptr<void> state_;
  std::weak_ptr<subscription> sub_;
  const subscription* raw_;
  void (*remove_)(const std::shared_ptr<void>&, const std::shared_ptr<subscription>&);
};

} // namespace

subscription_ptr bus::add_subscription(uint32_t type_id,
                                       const std::string& type_name,
                                       const caf::strong_actor_ptr& who,
                                       const std::string& service_name,
                                       mycelium::port* port,
                                       std::shared_ptr<mycelium::port> owner,
                                       bool link) {
  subscription_ptr sub;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    auto& svc = state_->services[service_name];
    if (!svc)
      svc = std::make_shared<detail::service_counters>(service_name);
    sub = std::make_shared<subscription>(who, state_->topic(type_id, type_name),
                                         svc);
    sub->port = port;
    sub->port_owner = std::move(owner);
    sub->link = link;
    state_->subs[type_id].push_back(sub);
    state_->rebuild();
  }
  notify_watchers();
  // Auto-unsubscribe on termination. Runs at once if `who` already died.
  if (auto* ptr = caf::actor_cast<caf::abstract_actor*>(who))
    ptr->attach(caf::attachable_ptr{new subscription_guard(
      std::weak_ptr<void>{state_}, sub,
      [](const std::shared_ptr<void>& vst, const std::shared_ptr<subscription>& s) {
        auto* st = static_cast<state*>(vst.get());
        bool removed;
        {
          std::lock_guard<std::mutex> guard{st->mtx};
          removed = st->remove(s);
        }
        if (removed)
          st->notify();
      })});
  return sub;
}

void bus::unsubscribe(const subscription_ptr& sub) {
  if (!sub)
    return;
  bool removed;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    removed = state_->remove(sub);
  }
  if (!removed)
    return;
  if (auto* ptr = caf::actor_cast<caf::abstract_actor*>(sub->subscriber))
    ptr->detach(caf::attachable::token{subscription_guard::token_type, sub.get()});
  notify_watchers();
}

std::vector<uint32_t> bus::interest(const caf::actor_control_block* exclude,
                                    bool local_only) const {
  std::vector<uint32_t> out;
  std::lock_guard<std::mutex> guard{state_->mtx};
  for (auto& [id, v] : state_->subs)
    for (auto& s : v)
      if (s->subscriber.get() != exclude
          && !(local_only && s->link)) {
        out.push_back(id);
        break;
      }
  return out;
}

std::map<std::string, std::vector<std::string>> bus::subscriptions() const {
  std::map<std::string, std::vector<std::string>> out;
  std::lock_guard<std::mutex> guard{state_->mtx};
  for (auto& [id, v] : state_->subs)
    for (auto& s : v)
      if (!s->link && s->service)
        out[s->service->name].push_back(s->topic->name);
  return out;
}

uint64_t bus::watch(std::function<void()> fn) {
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto id = state_->next_watch_id++;
  state_->watchers.emplace(id, std::make_shared<std::function<void()>>(std::move(fn)));
  return id;
}

void bus::unwatch(uint64_t id) {
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->watchers.erase(id);
}

void bus::notify_watchers() {
  state_->notify();
}

caf::error bus::set_responder(uint32_t type_id, const std::string& type_name,
                              const caf::strong_actor_ptr& who) {
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    auto& cur = state_->responders[type_id];
    if (cur && cur != who)
      return make_error(errc::already_registered,
                        "another service already serves requests of type '"
                          + type_name + "' on node '" + node_name_ + "'");
    cur = who;
    state_->topic(type_id, type_name);
    state_->rebuild();
  }
  std::weak_ptr<state> ws = state_;
  auto* raw = who.get(); // alive while the responder entry holds it
  if (auto* ptr = caf::actor_cast<caf::abstract_actor*>(who))
    ptr->attach_functor([ws, raw, type_id] {
      if (auto st = ws.lock()) {
        std::lock_guard<std::mutex> guard{st->mtx};
        auto i = st->responders.find(type_id);
        if (i != st->responders.end() && i->second.get() == raw) {
          st->responders.erase(i);
          st->rebuild();
        }
      }
    });
  return caf::none;
}

routing_table_ptr bus::snapshot() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  return state_->table;
}

void bus::count_unrouted(uint32_t type_id, const char* type_name) {
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto t = state_->topic(type_id, type_name);
  t->published.fetch_add(1, std::memory_order_relaxed);
  t->no_subscriber.fetch_add(1, std::memory_order_relaxed);
  if (state_->table->routes.count(type_id) == 0)
    state_->rebuild(); // later publishes find the topic in their snapshot
}

namespace {

topic_stats collect(const detail::topic_counters& t,
                    const std::vector<subscription_ptr>* live,
                    const std::vector<std::weak_ptr<subscription>>& limbo) {
  topic_stats r;
  r.type_id = t.type_id;
  r.type_name = t.name;
  r.published = t.published.load(std::memory_order_relaxed);
  r.no_subscriber = t.no_subscriber.load(std::memory_order_relaxed);
  r.refused = t.refused.load(std::memory_order_relaxed);
  r.enqueued = t.retired_enqueued.load(std::memory_order_relaxed);
  r.delivered = t.retired_delivered.load(std::memory_order_relaxed);
  r.dropped = t.retired_dropped.load(std::memory_order_relaxed);
  auto add = [&](const subscription& s) {
    r.enqueued += s.enqueued.load(std::memory_order_relaxed);
    r.delivered += s.delivered.load(std::memory_order_relaxed);
  };
  if (live) {
    r.subscribers = live->size();
    for (auto& s : *live)
      add(*s);
  }
  for (auto& w : limbo)
    if (auto s = w.lock(); s && s->topic.get() == &t)
      add(*s);
  return r;
}

} // namespace

std::vector<topic_stats> bus::topics() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  std::vector<topic_stats> out;
  for (auto& [id, t] : state_->topics) {
    auto i = state_->subs.find(id);
    out.push_back(collect(*t, i == state_->subs.end() ? nullptr : &i->second,
                          state_->limbo));
  }
  return out;
}

topic_stats bus::topic(uint32_t type_id) const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto t = state_->topics.find(type_id);
  if (t == state_->topics.end()) {
    topic_stats r;
    r.type_id = type_id;
    return r;
  }
  auto i = state_->subs.find(type_id);
  return collect(*t->second, i == state_->subs.end() ? nullptr : &i->second,
                 state_->limbo);
}

std::vector<service_stats> bus::services() const {
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    for (auto& kv : state_->services)
      names.push_back(kv.first);
  }
  std::vector<service_stats> out;
  for (auto& n : names)
    out.push_back(service(n));
  return out;
}

service_stats bus::service(const std::string& name) const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  service_stats r;
  r.name = name;
  auto i = state_->services.find(name);
  if (i == state_->services.end())
    return r;
  auto& c = *i->second;
  r.published = c.published.load(std::memory_order_relaxed);
  r.handler_errors = c.handler_errors.load(std::memory_order_relaxed);
  r.restarts = c.restarts.load(std::memory_order_relaxed);
  r.slow_handlers = c.slow_handlers.load(std::memory_order_relaxed);
  r.delivered = c.retired_delivered.load(std::memory_order_relaxed);
  r.dropped = c.retired_dropped.load(std::memory_order_relaxed);
  auto add = [&](const subscription& s) {
    if (s.service.get() == &c)
      r.delivered += s.delivered.load(std::memory_order_relaxed);
  };
  for (auto& kv : state_->subs)
    for (auto& s : kv.second)
      add(*s);
  for (auto& w : state_->limbo)
    if (auto s = w.lock())
      add(*s);
  return r;
}

std::shared_ptr<detail::service_counters>
bus::counters_of(const std::string& name) {
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto& svc = state_->services[name];
  if (!svc)
    svc = std::make_shared<detail::service_counters>(name);
  return svc;
}

} // namespace mycelium
