#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/message_handler.hpp>
#include <caf/settings.hpp>

#include "mycelium/actors/request.hpp"
#include "mycelium/actors/service_context.hpp"
#include "mycelium/bus/bus.hpp"
#include "mycelium/errc.hpp"

namespace mycelium {

/// Atom a supervisor sends a freshly spawned service; the reply arrives once
/// `on_start` has run, so callers can wait for subscriptions to be in place.
using started_atom = caf::atom_constant<caf::atom("mstarted")>;

/// Base class of every user service: a CAF event-based actor with isolated
/// state that talks to the world only through its node's bus.
///
/// Override `on_start` to subscribe, serve requests and publish; override
/// `on_stop` to release resources. Handlers run one at a time on the actor
/// (never concurrently), so member state needs no locking. A handler that
/// throws terminates this instance with `errc::service_failed`; its
/// supervisor restarts a fresh instance per its restart policy.
///
/// ```
/// class strategy : public mycelium::service {
/// public:
///   using service::service;
///   void on_start() override {
///     subscribe<md::quote>([this](const md::quote& q) {
///       publish(md::order{q.symbol, md::side::buy, 1});
///     });
///   }
/// };
/// ```
class service : public caf::event_based_actor {
public:
  service(caf::actor_config& cfg, service_context ctx);
  ~service() override;

  /// Called once per instance before any message is handled.
  virtual void on_start();

  /// Called once when the instance terminates (normally or by failure).
  virtual void on_stop();

  const std::string& service_name() const noexcept { return ctx_.name; }
  const caf::settings& params() const noexcept { return ctx_.params; }
  mycelium::bus& bus() noexcept { return *ctx_.bus; }

  const char* name() const override { return ctx_.name.c_str(); }

  // -- publish / subscribe -----------------------------------------------------

  /// Publishes `x` to every subscriber of `T` on the bus. All subscribers
  /// share one immutable payload; nothing is copied or serialized.
  template <class T>
  publish_status publish(T x) {
    refresh_routes();
    detail::bump(counters_->published);
    // One-entry route cache: services mostly publish one type at a time.
    if (cached_type_ != T::type_id || cached_version_ != routes_version_) {
      cached_route_ = mycelium::bus::lookup(*routes_, T::type_id);
      cached_type_ = T::type_id;
      cached_version_ = routes_version_;
    }
    return ctx_.bus->deliver_to(cached_route_, std::move(x), ctrl(), context());
  }

  /// Calls `f(const T&)` for every published `T`, in publish order per
  /// publisher. Replaces an earlier handler for `T`.
  template <class T, class F>
  void subscribe(F f) {
    static_assert(std::is_invocable_v<F, const T&>,
                  "subscribe<T>(f): f must be callable with const T&");
    auto sub = ctx_.bus->subscribe(T::type_id, T::type_name, ctrl(), ctx_.name);
    auto* raw = sub.get();
    add_handler(T::type_id, std::move(sub),
                caf::message_handler{[raw, f = std::move(f)](const T& x) mutable {
                  MYCELIUM_TSAN_ACQUIRE(&x); // pairs with the release in deliver
                  detail::bump(raw->delivered);
                  f(x);
                }});
  }

  /// Ends the subscription to `T`.
  template <class T>
  void unsubscribe() {
    remove_handler(T::type_id);
  }

  // -- request / reply ---------------------------------------------------------

  /// Serves requests of type `Req`: `f(const Req&)` returns the reply.
  /// At most one live service per node serves a given request type.
  template <class Req, class F>
  caf::error serve(F f) {
    using reply_type = std::invoke_result_t<F, const Req&>;
    static_assert(!std::is_void_v<reply_type>, "serve: f must return a reply");
    if (auto err = ctx_.bus->set_responder(Req::type_id, Req::type_name, ctrl()))
      return err;
    add_handler(Req::type_id, nullptr,
                caf::message_handler{[f = std::move(f)](const Req& x) mutable
                                     -> reply_type { return f(x); }});
    return caf::none;
  }

  /// Sends request `req` to the service serving `Req` and calls
  /// `on_reply(const Reply&)` or, on failure, `on_error(const caf::error&)`:
  /// `errc::no_responder` when nobody serves `Req`, `errc::request_timeout`
  /// when no reply came within `timeout`, or the responder's failure.
  template <class Reply, class Req, class OnReply, class OnError>
  void request(Req req, std::chrono::nanoseconds timeout, OnReply on_reply,
               OnError on_error) {
    refresh_routes();
    auto dest = find_responder(*routes_, Req::type_id, Req::type_name,
                               ctx_.bus->node_name());
    if (!dest) {
      on_error(dest.error());
      return;
    }
    event_based_actor::request(*dest, timeout, std::move(req))
      .then([on_reply](const Reply& x) mutable { on_reply(x); },
            [on_error, timeout](caf::error& err) mutable {
              on_error(request_error(err, Req::type_name, timeout));
            });
  }

protected:
  caf::behavior make_behavior() final;
  void on_exit() override;

private:
  void refresh_routes() {
    auto v = ctx_.bus->version();
    if (v != routes_version_) {
      routes_ = ctx_.bus->snapshot();
      routes_version_ = v;
    }
  }
  void add_handler(uint32_t type_id, subscription_ptr sub, caf::message_handler h);
  void remove_handler(uint32_t type_id);
  caf::behavior build_behavior();

  struct handler_entry {
    uint32_t type_id;
    subscription_ptr sub;
    caf::message_handler handler;
  };

  service_context ctx_;
  std::shared_ptr<detail::service_counters> counters_;
  routing_table_ptr routes_;
  uint64_t routes_version_ = 0;
  const routing_table::route* cached_route_ = nullptr; ///< points into *routes_
  uint32_t cached_type_ = 0;
  uint64_t cached_version_ = 0;
  std::vector<handler_entry> handlers_;
  bool started_ = false;
};

} // namespace mycelium
