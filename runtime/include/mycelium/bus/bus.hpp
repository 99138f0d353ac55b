#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/execution_unit.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>

#include "mycelium/bus/bus_stats.hpp"
#include "mycelium/bus/port.hpp"
#include "mycelium/detail/tsan.hpp"
#include "mycelium/errc.hpp"

namespace mycelium {

/// One subscriber actor's interest in one message type. Publishers bump
/// `enqueued`, the subscriber bumps `delivered`; when the last routing
/// snapshot that references it is gone, the difference is added to the
/// topic's and service's `dropped` (so loss through a dying subscriber is
/// counted exactly, never silent).
struct subscription {
  subscription(caf::strong_actor_ptr who,
               std::shared_ptr<detail::topic_counters> t,
               std::shared_ptr<detail::service_counters> s);
  ~subscription();
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  caf::strong_actor_ptr subscriber;
  /// Where messages are offered before the mailbox; null: the mailbox only.
  /// Kept alive by `port_owner`, or else by `subscriber` (a service that is
  /// its own port).
  mycelium::port* port = nullptr;
  std::shared_ptr<mycelium::port> port_owner;
  /// Whether the subscriber is a link to another bus: it never gets back
  /// what it published itself (no echo), and a delivery with `relay` false
  /// skips it.
  bool link = false;
  std::shared_ptr<detail::topic_counters> topic;
  std::shared_ptr<detail::service_counters> service;
  alignas(64) std::atomic<uint64_t> enqueued{0};
  alignas(64) std::atomic<uint64_t> delivered{0};
};

using subscription_ptr = std::shared_ptr<subscription>;

/// An immutable routing table. Publishers keep a snapshot and only re-read it
/// when `bus::version()` changes, so the publish path takes no lock.
struct routing_table {
  struct route {
    detail::topic_counters* topic = nullptr;
    std::vector<subscription*> subscribers;
    caf::strong_actor_ptr responder; ///< serves requests of this type
  };
  std::unordered_map<uint32_t, route> routes;
  std::vector<subscription_ptr> keep_alive;
  std::vector<std::shared_ptr<detail::topic_counters>> topics_alive;
};

using routing_table_ptr = std::shared_ptr<const routing_table>;

/// One value being fanned out: a generated struct of `type_id` that mailbox
/// subscribers get as a `caf::message`, made only when one needs it.
struct payload_ref {
  uint32_t type_id = 0;
  /// The value; only read until `boxed` is made, then the message's copy.
  void* value = nullptr;
  /// Moves `*value` into a message (called at most once per delivery).
  caf::message (*box)(uint32_t type_id, void* value) = nullptr;
  /// The message once made (or given, when the value arrived in one).
  caf::message boxed;

  /// The message for mailbox subscribers; boxes the value on first use and
  /// points `value` at the message's copy (moved-from values are not read).
  const caf::message& message() {
    if (boxed.empty()) {
      boxed = box(type_id, value);
      value = const_cast<void*>(boxed.at(0));
    }
    return boxed;
  }
};

/// Hot-path status of publish.
enum class publish_status : uint8_t {
  ok,             ///< handed to every subscriber
  no_subscriber,  ///< nobody subscribed (counted, not an error)
  back_pressured, ///< a link's send queue was full: its copy was refused
                  ///< by the link's overflow policy (counted per link)
};

/// The per-node message bus: topics keyed by schema type id, local fan-out
/// of one shared immutable payload, responders for request/reply, counters.
///
/// Thread-safety: every member function is thread-safe. Control operations
/// (subscribe, unsubscribe, responders) take a mutex and publish a new
/// routing snapshot; `deliver` on a snapshot takes no lock.
class bus {
public:
  explicit bus(std::string node_name = "local");
  ~bus();
  bus(const bus&) = delete;
  bus& operator=(const bus&) = delete;

  const std::string& node_name() const noexcept { return node_name_; }

  // -- subscriptions -----------------------------------------------------------

  /// Adds `who` as a subscriber of `type_id`. The subscription ends by
  /// `unsubscribe` or automatically when `who` terminates. A non-null
  /// `direct` is offered every message first (a loop-placed service running
  /// its handler on the delivering thread); `who` must keep it alive.
  subscription_ptr subscribe(uint32_t type_id, const std::string& type_name,
                             const caf::strong_actor_ptr& who,
                             const std::string& service_name,
                             mycelium::port* direct = nullptr);

  /// Adds a link's interest in `type_id` on behalf of its peer: like
  /// `subscribe`, with the link's `port` (its bounded send queue, or a ring
  /// it writes on the publisher's thread), which the subscription keeps
  /// alive. A link never receives what it published itself.
  subscription_ptr subscribe_link(uint32_t type_id, const std::string& type_name,
                                  const caf::strong_actor_ptr& link,
                                  std::shared_ptr<mycelium::port> port,
                                  const std::string& link_name);

  void unsubscribe(const subscription_ptr& sub);

  /// The type ids that have at least one subscriber other than `exclude`:
  /// what a link advertises to its peer. Links forward interest they hold
  /// for other links, so interest spreads along a tree of links; with
  /// `local_only` only subscribers that are not links count (links of a
  /// mesh, which do not relay).
  std::vector<uint32_t> interest(const caf::actor_control_block* exclude,
                                 bool local_only = false) const;

  /// Type names each service (not link) subscribes to, by service name, in
  /// type id order.
  std::map<std::string, std::vector<std::string>> subscriptions() const;

  /// Calls `fn` (on the thread that made the change, never under the bus
  /// lock) after any subscription was added or removed. Returns an id for
  /// `unwatch`. `fn` should only post a message.
  uint64_t watch(std::function<void()> fn);

  void unwatch(uint64_t id);

  /// Makes `who` the responder for requests of `type_id`. Fails with
  /// `already_registered` while another live responder holds the type.
  caf::error set_responder(uint32_t type_id, const std::string& type_name,
                           const caf::strong_actor_ptr& who);

  // -- routing -----------------------------------------------------------------

  /// Changes whenever the routing table changes (acquire load).
  uint64_t version() const noexcept {
    return version_->load(std::memory_order_acquire);
  }

  /// The current routing table.
  routing_table_ptr snapshot() const;

  /// Fans `x` out to the subscribers of `T` in `table`. One subscriber gets
  /// the value moved into a single typed mailbox element (one allocation,
  /// like a plain CAF send); several share one immutable `caf::message`
  /// (one payload allocation plus one element each, never a copy of `x`).
  /// Creates the topic's counters on first use (slow path, once per type).
  template <class T>
  publish_status deliver(const routing_table& table, T&& x,
                         caf::actor_control_block* sender,
                         caf::execution_unit* ctx) {
    using value_type = std::decay_t<T>;
    return deliver_to(lookup(table, value_type::type_id), std::forward<T>(x),
                      sender, ctx);
  }

  /// The route of `type_id` in `table`, or nullptr if the type has never
  /// been seen. Valid as long as `table` is; publishers may cache it.
  static const routing_table::route* lookup(const routing_table& table,
                                            uint32_t type_id) noexcept {
    auto i = table.routes.find(type_id);
    return i == table.routes.end() ? nullptr : &i->second;
  }

  /// `deliver` with the route already looked up (nullptr: unknown type).
  template <class T>
  publish_status deliver_to(const routing_table::route* route, T&& x,
                            caf::actor_control_block* sender,
                            caf::execution_unit* ctx) {
    using value_type = std::decay_t<T>;
    auto* r = count_publish(route, value_type::type_id, value_type::type_name);
    if (r == nullptr)
      return publish_status::no_subscriber;
    if (r->subscribers.size() == 1) {
      auto* s = r->subscribers.front();
      if (!s->link) { // a link gets a shared message (fan_out)
        if (s->port == nullptr)
          s->enqueued.fetch_add(1, std::memory_order_relaxed);
        else if (auto res = offer(*r, *s, value_type::type_id, &x);
                 res != offer_result::enqueue)
          return res == offer_result::refused ? publish_status::back_pressured
                                              : publish_status::ok;
        auto elem = caf::make_mailbox_element(caf::strong_actor_ptr{sender},
                                              caf::make_message_id(), {},
                                              std::forward<T>(x));
        MYCELIUM_TSAN_RELEASE(elem->content().get(0)); // payload complete
        s->subscriber->enqueue(std::move(elem), ctx);
        return publish_status::ok;
      }
    }
    // An lvalue stays the caller's: mailbox subscribers get a copy of it.
    payload_ref p{value_type::type_id, const_cast<value_type*>(&x),
                  std::is_lvalue_reference_v<T> ? &copy_value<value_type>
                                                : &box_value<value_type>,
                  {}};
    return fan_out(*r, p, sender, ctx);
  }

  /// Same for a value of type `type_id` that a link decoded (on the stack,
  /// or in a message it received): `p.box` or `p.boxed` must be set. With
  /// `relay` false it reaches local subscribers only, never another link
  /// (a link of a mesh, where every peer has its own link).
  publish_status deliver(const routing_table& table, const char* type_name,
                         payload_ref& p, caf::actor_control_block* sender,
                         caf::execution_unit* ctx, bool relay = true) {
    return deliver_to(lookup(table, p.type_id), type_name, p, sender, ctx, relay);
  }

  /// Same with the route of `p.type_id` already looked up (nullptr: unknown
  /// type), for a link that caches it per type between routing changes.
  publish_status deliver_to(const routing_table::route* route, const char* type_name,
                            payload_ref& p, caf::actor_control_block* sender,
                            caf::execution_unit* ctx, bool relay = true) {
    auto* r = count_publish(route, p.type_id, type_name);
    if (r == nullptr)
      return publish_status::no_subscriber;
    return fan_out(*r, p, sender, ctx, relay);
  }

  /// Same for a type-erased message holding one value of type `type_id`.
  publish_status deliver(const routing_table& table, uint32_t type_id,
                         const char* type_name, caf::message msg,
                         caf::actor_control_block* sender,
                         caf::execution_unit* ctx) {
    payload_ref p;
    p.type_id = type_id;
    p.value = const_cast<void*>(msg.at(0));
    p.boxed = std::move(msg);
    return deliver(table, type_name, p, sender, ctx);
  }

  /// Publishes from outside any service (main thread, tests, bridges).
  template <class T>
  publish_status publish(T x) {
    auto table = snapshot();
    return deliver(*table, std::move(x), nullptr, nullptr);
  }

  // -- statistics --------------------------------------------------------------

  /// Counters of every topic that was published or subscribed, by type id.
  std::vector<topic_stats> topics() const;

  /// Counters of one topic; all zero if the type was never seen.
  topic_stats topic(uint32_t type_id) const;

  /// Counters of every service name that ever ran on this bus.
  std::vector<service_stats> services() const;

  /// Counters of one service name; all zero if unknown.
  service_stats service(const std::string& name) const;

  /// Live counters of a service name, created on first use (used by services
  /// and the supervisor).
  std::shared_ptr<detail::service_counters> counters_of(const std::string& name);

private:
  struct state;

  /// Counts one publish on `r` and returns it, or nullptr when nobody
  /// subscribed (then also counted as no_subscriber; an unknown type gets
  /// its topic counters created first).
  const routing_table::route* count_publish(const routing_table::route* r,
                                            uint32_t type_id,
                                            const char* type_name) {
    if (r == nullptr) {
      count_unrouted(type_id, type_name);
      return nullptr;
    }
    r->topic->published.fetch_add(1, std::memory_order_relaxed);
    if (r->subscribers.empty()) {
      r->topic->no_subscriber.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    return r;
  }

  template <class T>
  static caf::message box_value(uint32_t, void* value) {
    return caf::make_message(std::move(*static_cast<T*>(value)));
  }

  template <class T>
  static caf::message copy_value(uint32_t, void* value) {
    return caf::make_message(*static_cast<const T*>(value));
  }

  /// Puts the message of `p` into `s`'s mailbox (boxing it on first use).
  static void enqueue(subscription& s, payload_ref& p, caf::actor_control_block* sender,
                      caf::execution_unit* ctx) {
    auto& msg = p.message();
    MYCELIUM_TSAN_RELEASE(msg.at(0)); // the payload is complete: hand it over
    s.subscriber->enqueue(caf::make_mailbox_element(caf::strong_actor_ptr{sender},
                                                    caf::make_message_id(), {}, msg),
                          ctx);
  }

  /// Offers `*value` to the port of `s` and counts the outcome on `s` and
  /// on the topic of `r` (see `port`).
  static offer_result offer(const routing_table::route& r, subscription& s,
                            uint32_t type_id, const void* value) noexcept {
    s.enqueued.fetch_add(1, std::memory_order_relaxed);
    auto res = s.port->offer(type_id, value);
    if (res == offer_result::delivered) {
      s.delivered.fetch_add(1, std::memory_order_relaxed);
    } else if (res == offer_result::refused) {
      s.enqueued.fetch_sub(1, std::memory_order_relaxed);
      r.topic->refused.fetch_add(1, std::memory_order_relaxed);
    }
    return res;
  }

  /// Hands `p` to every subscriber of `r`: each port is offered the value
  /// first; everyone it leaves to the mailbox shares one immutable message,
  /// made once when the first of them needs it.
  publish_status fan_out(const routing_table::route& r, payload_ref& p,
                         caf::actor_control_block* sender,
                         caf::execution_unit* ctx, bool relay = true) {
    auto result = publish_status::ok;
    size_t handed = 0;
    for (auto* s : r.subscribers) {
      if (s->link && (!relay || s->subscriber.get() == sender))
        continue; // no echo; from a link of a mesh no other link gets it
      if (s->port == nullptr) {
        s->enqueued.fetch_add(1, std::memory_order_relaxed);
      } else if (auto res = offer(r, *s, p.type_id, p.value);
                 res != offer_result::enqueue) {
        if (res == offer_result::refused)
          result = publish_status::back_pressured;
        else
          ++handed;
        continue;
      }
      ++handed;
      enqueue(*s, p, sender, ctx);
    }
    if (handed == 0 && result == publish_status::ok) {
      // Only the publishing link itself was interested.
      r.topic->no_subscriber.fetch_add(1, std::memory_order_relaxed);
      return publish_status::no_subscriber;
    }
    return result;
  }

  subscription_ptr add_subscription(uint32_t type_id, const std::string& type_name,
                                    const caf::strong_actor_ptr& who,
                                    const std::string& service_name,
                                    mycelium::port* port,
                                    std::shared_ptr<mycelium::port> owner,
                                    bool link);
  void notify_watchers();

  void count_unrouted(uint32_t type_id, const char* type_name);
  std::string node_name_;
  std::shared_ptr<state> state_;
  std::atomic<uint64_t>* version_; // lives in *state_

};

} // namespace mycelium
