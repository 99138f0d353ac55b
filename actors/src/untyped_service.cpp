#include "mycelium/actors/untyped_service.hpp"

#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/others.hpp>
#include <caf/response_promise.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include "mycelium/actors/deployment_ready.hpp"
#include "mycelium/actors/detail/participant_core.hpp"
#include "mycelium/actors/log.hpp"
#include "mycelium/actors/request.hpp"

namespace mycelium {

foreign_host::~foreign_host() = default;

bool foreign_host::deliver_value(uint32_t, const void*) {
  return false;
}

namespace {

using ustarted_atom = caf::atom_constant<caf::atom("mustarted")>;
using ufail_atom = caf::atom_constant<caf::atom("mufail")>;
using uquit_atom = caf::atom_constant<caf::atom("muquit")>;
using ureply_atom = caf::atom_constant<caf::atom("mureply")>;
using ureply_error_atom = caf::atom_constant<caf::atom("mureplyerr")>;

} // namespace

/// What the handle and the actor share. `mtx` guards the mutable part.
struct untyped_handle::state {
  std::string name;
  caf::settings params;
  std::shared_ptr<mycelium::bus> bus;
  const schema_descriptor* schema = nullptr;
  caf::actor_system* sys = nullptr;
  std::shared_ptr<detail::service_counters> counters;

  mutable std::mutex mtx;
  caf::actor_addr self; ///< the actor (weak: the actor owns this state)
  bool ended = false;
  std::unordered_map<uint32_t, subscription_ptr> subs;
  std::unordered_set<uint32_t> served;
  routing_table_ptr routes; ///< publish's snapshot, re-read on a new version
  uint64_t routes_version = 0;

  caf::actor actor() const {
    std::lock_guard<std::mutex> guard{mtx};
    return ended ? caf::actor{} : caf::actor_cast<caf::actor>(self);
  }

  const char* type_name(uint32_t type_id) const {
    auto* t = schema->find(type_id);
    return t == nullptr ? "?" : t->name.c_str();
  }

  std::string who() const { return bus->node_name() + "/" + name; }
};

namespace {

/// The actor behind an untyped service: it holds the subscriptions (the bus
/// routes to actors), takes every delivery directly on the publisher's
/// thread and hands it to the foreign host encoded, answers the
/// supervisor's start handshake once the foreign side started, and turns
/// requests into `foreign_host::request` calls with response promises.
class untyped_service_actor : public caf::event_based_actor, public port {
public:
  untyped_service_actor(caf::actor_config& cfg, service_context ctx,
                        std::shared_ptr<foreign_host> host)
    : caf::event_based_actor(cfg), host_(std::move(host)) {
    auto st = std::make_shared<untyped_handle::state>();
    st->name = std::move(ctx.name);
    st->params = std::move(ctx.params);
    st->bus = std::move(ctx.bus);
    st->schema = ctx.schema;
    st->sys = &home_system();
    st->counters = st->bus->counters_of(st->name);
    state_ = std::move(st);
  }

  const char* name() const override { return state_->name.c_str(); }

  /// Every delivery is taken here, on the publisher's thread (`handled`:
  /// this counts `delivered`): the host only queues, so nothing waits for
  /// the foreign side.
  offer_result offer(uint32_t type_id, const void* value) noexcept override {
    {
      std::lock_guard<std::mutex> guard{state_->mtx};
      auto i = state_->subs.find(type_id);
      if (state_->ended || i == state_->subs.end())
        return offer_result::handled; // unsubscribed meanwhile: counted as dropped
      i->second->delivered.fetch_add(1, std::memory_order_relaxed);
    }
    try {
      hand_over(type_id, value);
    } catch (const std::exception& e) { // out of memory: the message is lost
      log(log_level::error, state_->who(),
          std::string{"cannot hand a message to the foreign service: "} + e.what());
    }
    return offer_result::handled;
  }

  caf::behavior make_behavior() override {
    state_->self = address();
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x)
                          -> caf::result<caf::message> {
      return on_request(x.copy_content_to_message());
    });
    host_->start(std::make_shared<untyped_handle>(state_));
    return {
      [this](started_atom) -> caf::result<caf::atom_value> {
        if (started_)
          return caf::atom("ok");
        start_promise_ = make_response_promise();
        return start_promise_;
      },
      [this](ustarted_atom, caf::error& err) {
        if (err) {
          quit(std::move(err));
          return;
        }
        started_ = true;
        if (start_promise_.pending())
          start_promise_.deliver(caf::atom("ok"));
      },
      [this](ufail_atom, std::string& text) {
        state_->counters->handler_errors.fetch_add(1, std::memory_order_relaxed);
        log(log_level::error, state_->who(), text);
        quit(make_error(errc::service_failed, std::move(text)));
      },
      [this](uquit_atom) { quit(); },
      [this](ureply_atom, uint64_t id, caf::message& reply) {
        if (auto i = pending_.find(id); i != pending_.end()) {
          i->second.deliver(std::move(reply));
          pending_.erase(i);
        }
      },
      [this](ureply_error_atom, uint64_t id, std::string& text) {
        if (auto i = pending_.find(id); i != pending_.end()) {
          i->second.deliver(make_error(errc::service_failed, std::move(text)));
          pending_.erase(i);
        }
      },
    };
  }

  void on_exit() override {
    // The foreign on_stop first: like a C++ service's, it may still publish.
    host_->stop(fail_state());
    std::vector<subscription_ptr> subs;
    {
      std::lock_guard<std::mutex> guard{state_->mtx};
      state_->ended = true;
      for (auto& kv : state_->subs)
        subs.push_back(std::move(kv.second));
      state_->subs.clear();
      state_->routes.reset();
    }
    for (auto& s : subs)
      state_->bus->unsubscribe(s);
    for (auto& kv : pending_)
      kv.second.deliver(make_error(errc::service_failed,
                                   "service '" + state_->name + "' stopped"));
    pending_.clear();
    if (start_promise_.pending())
      start_promise_.deliver(fail_state() ? fail_state()
                                          : make_error(errc::service_failed,
                                                       "service '" + state_->name
                                                         + "' ended while starting"));
    host_.reset();
  }

  std::shared_ptr<untyped_handle::state> state() const { return state_; }

private:
  /// Hands `*value` to the host as the struct if it takes it, else encoded.
  void hand_over(uint32_t type_id, const void* value) {
    if (host_->deliver_value(type_id, value))
      return;
    thread_local std::vector<uint8_t> buf;
    buf.clear();
    wire::writer w{buf};
    if (type_id == deployment_ready::type_id) {
      // Node-local, not in any schema: field 1 node, field 2 nodes.
      auto& r = *static_cast<const deployment_ready*>(value);
      w.string(1, r.node);
      w.scalar(2, r.nodes);
    } else if (!state_->schema->encode_value(type_id, value, w)) {
      log(log_level::error, state_->who(),
          "cannot encode a message of type id " + std::to_string(type_id)
            + " for the foreign service; dropped");
      return;
    }
    host_->deliver(type_id, buf.data(), buf.size());
  }

  caf::result<caf::message> on_request(caf::message msg) {
    std::vector<uint8_t> buf;
    uint32_t type_id = 0;
    bool served = false;
    if (msg.size() == 1 && state_->schema->encode(msg, buf, type_id)) {
      std::lock_guard<std::mutex> guard{state_->mtx};
      served = state_->served.count(type_id) != 0;
    }
    if (!served) {
      log(log_level::warning, state_->who(),
          "unexpected message " + to_string(msg) + "; dropped");
      return caf::sec::unexpected_message;
    }
    auto rp = make_response_promise();
    auto id = next_request_++;
    pending_.emplace(id, rp);
    host_->request(id, type_id, buf.data(), buf.size());
    return rp;
  }

  std::shared_ptr<untyped_handle::state> state_;
  std::shared_ptr<foreign_host> host_;
  bool started_ = false;
  caf::response_promise start_promise_;
  std::unordered_map<uint64_t, caf::response_promise> pending_;
  uint64_t next_request_ = 1;
};

} // namespace

// -- untyped_handle -----------------------------------------------------------

untyped_handle::untyped_handle(std::shared_ptr<state> st) : state_(std::move(st)) {
}

untyped_handle::~untyped_handle() = default;

const std::string& untyped_handle::name() const noexcept { return state_->name; }

const caf::settings& untyped_handle::params() const noexcept { return state_->params; }

const std::string& untyped_handle::node_name() const noexcept {
  return state_->bus->node_name();
}

const schema_descriptor& untyped_handle::schema() const noexcept {
  return *state_->schema;
}

mycelium::bus& untyped_handle::bus() const noexcept { return *state_->bus; }

caf::actor_system& untyped_handle::system() const noexcept { return *state_->sys; }

void untyped_handle::started(caf::error err) {
  if (auto a = state_->actor())
    caf::anon_send(a, ustarted_atom::value, std::move(err));
}

void untyped_handle::fail(std::string text) {
  if (auto a = state_->actor())
    caf::anon_send(a, ufail_atom::value, std::move(text));
}

void untyped_handle::quit() {
  if (auto a = state_->actor())
    caf::anon_send(a, uquit_atom::value);
}

bool untyped_handle::alive() const noexcept {
  std::lock_guard<std::mutex> guard{state_->mtx};
  return !state_->ended;
}

caf::error untyped_handle::subscribe(uint32_t type_id) {
  static const wire::type_digest ready{deployment_ready::type_id, deployment_ready::type_name,
                                       {}};
  auto* t = type_id == deployment_ready::type_id ? &ready : state_->schema->find(type_id);
  if (t == nullptr)
    return make_error(errc::unknown_type,
                      "service '" + state_->name + "': type id " + std::to_string(type_id)
                        + " is not in schema " + state_->schema->package);
  std::lock_guard<std::mutex> guard{state_->mtx};
  if (state_->ended)
    return make_error(errc::service_failed, "service '" + state_->name + "' has ended");
  if (state_->subs.count(type_id) != 0)
    return caf::none;
  auto who = caf::actor_cast<caf::strong_actor_ptr>(state_->self);
  if (!who)
    return make_error(errc::service_failed, "service '" + state_->name + "' has ended");
  auto* receiver = static_cast<port*>(
    static_cast<untyped_service_actor*>(caf::actor_cast<caf::abstract_actor*>(who)));
  // The bus calls watchers on this thread, outside its own lock; they only
  // post messages, so holding ours is fine.
  state_->subs.emplace(type_id,
                       state_->bus->subscribe(type_id, t->name, who, state_->name, receiver));
  return caf::none;
}

void untyped_handle::unsubscribe(uint32_t type_id) {
  subscription_ptr sub;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    auto i = state_->subs.find(type_id);
    if (i == state_->subs.end())
      return;
    sub = std::move(i->second);
    state_->subs.erase(i);
  }
  state_->bus->unsubscribe(sub);
}

namespace {

/// Fans `msg` out from the service of `st`: false (nothing published) once
/// the service has ended. One lock for the routing snapshot and the sender.
bool deliver_from(untyped_handle::state& st, uint32_t type_id, caf::message msg,
                  publish_status& status) {
  routing_table_ptr routes;
  caf::strong_actor_ptr sender;
  {
    std::lock_guard<std::mutex> guard{st.mtx};
    if (st.ended)
      return false;
    auto v = st.bus->version();
    if (!st.routes || v != st.routes_version) {
      st.routes = st.bus->snapshot();
      st.routes_version = v;
    }
    routes = st.routes;
    sender = caf::actor_cast<caf::strong_actor_ptr>(st.self);
  }
  // Any thread may publish through a handle: not a single-writer counter.
  st.counters->published.fetch_add(1, std::memory_order_relaxed);
  status = st.bus->deliver(*routes, type_id, st.type_name(type_id), std::move(msg),
                           sender.get(), nullptr);
  return true;
}

} // namespace

errc untyped_handle::publish(uint32_t type_id, caf::message msg, publish_status* status) {
  auto st = publish_status::no_subscriber;
  if (!deliver_from(*state_, type_id, std::move(msg), st))
    return errc::service_failed;
  if (status != nullptr)
    *status = st;
  return errc::none;
}

errc untyped_handle::publish(uint32_t type_id, const uint8_t* payload, size_t n,
                             publish_status* status) {
  if (state_->schema->find(type_id) == nullptr)
    return errc::unknown_type;
  caf::message msg;
  if (auto e = state_->schema->decode(type_id, payload, n, msg); e != errc::none)
    return e;
  auto st = publish_status::no_subscriber;
  if (!deliver_from(*state_, type_id, std::move(msg), st))
    return errc::service_failed; // the service (or its node) has stopped
  if (status != nullptr)
    *status = st;
  return errc::none;
}

caf::error untyped_handle::serve(uint32_t type_id) {
  auto* t = state_->schema->find(type_id);
  if (t == nullptr)
    return make_error(errc::unknown_type,
                      "service '" + state_->name + "': type id " + std::to_string(type_id)
                        + " is not in schema " + state_->schema->package);
  auto who = caf::actor_cast<caf::strong_actor_ptr>(state_->actor());
  if (!who)
    return make_error(errc::service_failed, "service '" + state_->name + "' has ended");
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    state_->served.insert(type_id);
  }
  return state_->bus->set_responder(type_id, t->name, who);
}

caf::error untyped_handle::reply(uint64_t id, uint32_t type_id, const uint8_t* payload,
                                 size_t n) {
  if (state_->schema->find(type_id) == nullptr)
    return make_error(errc::unknown_type,
                      "reply of type id " + std::to_string(type_id) + " is not in schema "
                        + state_->schema->package);
  caf::message msg;
  if (auto e = state_->schema->decode(type_id, payload, n, msg); e != errc::none)
    return make_error(e, "reply of type '" + std::string{state_->type_name(type_id)}
                           + "' does not decode: " + to_string(e));
  auto a = state_->actor();
  if (!a)
    return make_error(errc::service_failed, "service '" + state_->name + "' has ended");
  caf::anon_send(a, ureply_atom::value, id, std::move(msg));
  return caf::none;
}

void untyped_handle::reply_error(uint64_t id, std::string text) {
  if (auto a = state_->actor())
    caf::anon_send(a, ureply_error_atom::value, id, std::move(text));
}

caf::expected<untyped_reply> untyped_handle::request(uint32_t type_id,
                                                     const uint8_t* payload, size_t n,
                                                     std::chrono::nanoseconds timeout) {
  auto* type_name = state_->type_name(type_id);
  if (state_->schema->find(type_id) == nullptr)
    return make_error(errc::unknown_type, "request type id " + std::to_string(type_id)
                                            + " is not in schema "
                                            + state_->schema->package);
  auto dest = find_responder(*state_->bus->snapshot(), type_id, type_name,
                             state_->bus->node_name());
  if (!dest)
    return dest.error();
  caf::message msg;
  if (auto e = state_->schema->decode(type_id, payload, n, msg); e != errc::none)
    return make_error(e, "request of type '" + std::string{type_name}
                           + "' does not decode: " + to_string(e));
  caf::expected<untyped_reply> result{caf::error{}};
  caf::scoped_actor self{*state_->sys};
  self->request(*dest, timeout, std::move(msg))
    .receive([&](caf::error& err) { result = request_error(err, type_name, timeout); },
             caf::others >> [&](caf::message_view& x) -> caf::result<caf::message> {
               auto reply = x.copy_content_to_message();
               untyped_reply out;
               if (!state_->schema->encode(reply, out.payload, out.type_id))
                 result = make_error(errc::unknown_type,
                                     "the reply to '" + std::string{type_name}
                                       + "' is not a message of schema "
                                       + state_->schema->package + ": "
                                       + to_string(reply));
               else
                 result = std::move(out);
               return caf::message{};
             });
  return result;
}

service_stats untyped_handle::stats() const {
  return state_->bus->service(state_->name);
}

service_factory untyped_service_factory(foreign_host_maker make_host) {
  return [make_host](caf::actor_system& sys, service_context ctx) -> caf::actor {
    if (ctx.schema == nullptr)
      throw std::runtime_error("service '" + ctx.name
                               + "' works by type id and needs its node's schema, "
                                 "which the node was not given (node::use_schema)");
    auto host = make_host(ctx);
    return sys.spawn<untyped_service_actor>(std::move(ctx), std::move(host));
  };
}

} // namespace mycelium
