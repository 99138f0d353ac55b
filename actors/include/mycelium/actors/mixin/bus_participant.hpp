#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include <caf/actor_config.hpp>
#include <caf/message_handler.hpp>
#include <caf/settings.hpp>

#include "mycelium/actors/detail/participant_core.hpp"
#include "mycelium/actors/request.hpp"
#include "mycelium/actors/service_context.hpp"
#include "mycelium/bus/bus.hpp"
#include "mycelium/detail/tsan.hpp"
#include "mycelium/errc.hpp"

namespace mycelium::mixin {

/// The bus-participant capability of an actor, as a CAF-style mixin
/// (`caf::extend<Base, Subtype>::with<bus_participant, ...>`): typed
/// publish, subscribe, serve and request over the node's bus, with handler
/// bookkeeping, a route cache and counters. It does not care where the actor
/// runs; `mixin::placeable` decides that, so both placements share it.
///
/// `Base` must be an event-based CAF actor (it provides `become` and
/// `request(...).then`). The subtype calls `participant_core().mark_started()`
/// once its `on_start` ran and returns `participant_core().behavior()` from
/// `make_behavior`.
///
/// Thread-safety: like any actor state, touched only by the actor's own
/// handlers.
template <class Base, class Subtype>
class bus_participant : public Base {
public:
  bus_participant(caf::actor_config& cfg, service_context ctx)
    : Base(cfg), core_(std::move(ctx)) {
  }

  const std::string& service_name() const noexcept { return core_.context().name; }
  const caf::settings& params() const noexcept { return core_.context().params; }
  mycelium::bus& bus() noexcept { return core_.bus(); }
  mycelium::placement where() const noexcept { return core_.context().where; }

  // -- publish / subscribe -----------------------------------------------------

  /// Publishes `x` to every subscriber of `T` on the bus. All subscribers
  /// share one immutable payload; nothing is copied or serialized.
  template <class T>
  publish_status publish(T x) {
    mycelium::detail::bump(core_.counters().published);
    return core_.bus().deliver_to(core_.route(T::type_id), std::move(x),
                                  this->ctrl(), this->context());
  }

  /// Calls `f(const T&)` for every published `T`, in publish order per
  /// publisher. Replaces an earlier handler for `T`.
  template <class T, class F>
  void subscribe(F f) {
    static_assert(std::is_invocable_v<F, const T&>,
                  "subscribe<T>(f): f must be callable with const T&");
    auto* port = direct_port();
    auto sub = core_.bus().subscribe(T::type_id, T::type_name, this->ctrl(),
                                     core_.context().name, port);
    auto* raw = sub.get();
    auto* core = &core_;
    auto handle = [raw, core, f = std::move(f)](const T& x) mutable {
      MYCELIUM_TSAN_ACQUIRE(&x); // pairs with the release in deliver
      mycelium::detail::bump(raw->delivered);
      if (!core->timed()) {
        f(x);
        return;
      }
      auto start = mycelium::detail::participant_core::budget_clock();
      f(x);
      core->check_budget(start, T::type_name);
    };
    if (port == nullptr) { // the pool: the mailbox is the only entry point
      add_handler(T::type_id, std::move(sub), caf::message_handler{std::move(handle)});
      return;
    }
    // One handler object behind both entry points (mailbox and direct), so
    // that state captured by `f` is shared.
    auto shared = std::make_shared<decltype(handle)>(std::move(handle));
    add_handler(T::type_id, std::move(sub),
                caf::message_handler{[shared](const T& x) { (*shared)(x); }},
                [shared](const void* x) { (*shared)(*static_cast<const T*>(x)); });
  }

  /// Ends the subscription to `T`.
  template <class T>
  void unsubscribe() {
    if (core_.remove_handler(T::type_id))
      this->become(core_.behavior());
  }

  // -- request / reply ---------------------------------------------------------

  /// Serves requests of type `Req`: `f(const Req&)` returns the reply.
  /// At most one live service per node serves a given request type.
  template <class Req, class F>
  caf::error serve(F f) {
    using reply_type = std::invoke_result_t<F, const Req&>;
    static_assert(!std::is_void_v<reply_type>, "serve: f must return a reply");
    if (auto err = core_.bus().set_responder(Req::type_id, Req::type_name,
                                             this->ctrl()))
      return err;
    auto* core = &core_;
    add_handler(Req::type_id, nullptr,
                caf::message_handler{[core, f = std::move(f)](const Req& x) mutable
                                     -> reply_type {
                  if (!core->timed())
                    return f(x);
                  auto start = mycelium::detail::participant_core::budget_clock();
                  auto reply = f(x);
                  core->check_budget(start, Req::type_name);
                  return reply;
                }});
    return caf::none;
  }

  /// Sends request `req` to the service serving `Req` and calls
  /// `on_reply(const Reply&)` or, on failure, `on_error(const caf::error&)`:
  /// `errc::no_responder` when nobody serves `Req`, `errc::request_timeout`
  /// when no reply came within `timeout`, or the responder's failure.
  template <class Reply, class Req, class OnReply, class OnError>
  void request(Req req, std::chrono::nanoseconds timeout, OnReply on_reply,
               OnError on_error) {
    auto dest = find_responder(core_.routes(), Req::type_id, Req::type_name,
                               core_.bus().node_name());
    if (!dest) {
      on_error(dest.error());
      return;
    }
    Base::request(*dest, timeout, std::move(req))
      .then([on_reply](const Reply& x) mutable { on_reply(x); },
            [on_error, timeout](caf::error& err) mutable {
              on_error(request_error(err, Req::type_name, timeout));
            });
  }

protected:
  /// Where the bus may hand messages without the mailbox; none by default
  /// (`mixin::placeable` offers one for loop placement).
  virtual port* direct_port() noexcept { return nullptr; }

  mycelium::detail::participant_core& participant_core() noexcept { return core_; }
  const mycelium::detail::participant_core& participant_core() const noexcept {
    return core_;
  }

private:
  void add_handler(uint32_t type_id, subscription_ptr sub, caf::message_handler h,
                   mycelium::detail::participant_core::direct_handler direct = {}) {
    if (core_.add_handler(type_id, std::move(sub), std::move(h), std::move(direct)))
      this->become(core_.behavior());
  }

  mycelium::detail::participant_core core_;
};

} // namespace mycelium::mixin
