#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>
#include <caf/settings.hpp>

#include "mycelium/actors/foreign_host.hpp"
#include "mycelium/actors/service_context.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "mycelium/bus/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/errc.hpp"

namespace mycelium {

/// A reply to an untyped request: its type id and TLV payload.
struct untyped_reply {
  uint32_t type_id = 0;
  std::vector<uint8_t> payload;
};

/// The untyped service API: what a service written in another language
/// does on its node's bus, by type id, with payloads as TLV bytes (or as a
/// `caf::message` holding one value of the schema). The bindings (Python,
/// and any future language) sit on it. One handle per service instance,
/// given to its `foreign_host` in `start`; it stays valid after the
/// service ended (then every call fails or does nothing).
///
/// Messages the service subscribed to reach `foreign_host::deliver` on the
/// publisher's thread: encoded once there, no mailbox, no CAF worker.
/// Publishing decodes the payload with the node's schema (the C++ decoder
/// checks it as strictly as a link does) and fans it out as a C++ publish.
///
/// Thread-safety: every member function is thread-safe and may be called
/// from any thread, the foreign runtime's included.
class untyped_handle {
public:
  struct state;

  explicit untyped_handle(std::shared_ptr<state> st);
  ~untyped_handle();

  const std::string& name() const noexcept;
  const caf::settings& params() const noexcept;
  const std::string& node_name() const noexcept;
  const schema_descriptor& schema() const noexcept;
  mycelium::bus& bus() const noexcept;
  /// The actor system the service runs in (its node's).
  caf::actor_system& system() const noexcept;

  // -- lifecycle ---------------------------------------------------------------

  /// The foreign `on_start` ran (`err` empty) or failed (the service then
  /// fails to start with `err`). Call once.
  void started(caf::error err = {});

  /// A foreign handler failed: the service terminates with
  /// `errc::service_failed` and `text` (a traceback), and its supervisor
  /// restarts it per its policy.
  void fail(std::string text);

  /// The service ends normally (it is not restarted).
  void quit();

  /// Whether the service's actor still runs.
  bool alive() const noexcept;

  // -- publish / subscribe -----------------------------------------------------

  /// Adds the service's interest in `type_id`: `deliver` gets every
  /// message of it. Fails with `unknown_type` for a type the schema lacks.
  /// `deployment_ready::type_id` is accepted too; its payload is field 1
  /// (string) the node's name and field 2 (u32) the number of nodes.
  caf::error subscribe(uint32_t type_id);

  /// Ends the interest in `type_id` (nothing if there was none).
  void unsubscribe(uint32_t type_id);

  /// Publishes the TLV `payload` as a message of `type_id`. Returns
  /// `errc::none` and sets `*status`, or the decode error (`unknown_type`,
  /// `bad_wire_type`, ...) when the payload is not a valid message of the
  /// schema, or `service_failed` once the service has ended; then nothing
  /// was published.
  [[nodiscard]] errc publish(uint32_t type_id, const uint8_t* payload, size_t n,
                             publish_status* status = nullptr);

  /// Publishes a message holding one value of the schema (its type id is
  /// `type_id`), without encoding. Returns `errc::none` and sets `*status`,
  /// or `service_failed` once the service has ended.
  [[nodiscard]] errc publish(uint32_t type_id, caf::message msg,
                             publish_status* status = nullptr);

  // -- request / reply ---------------------------------------------------------

  /// Makes this service the responder of `type_id`: `foreign_host::request`
  /// gets each request. Fails with `already_registered` or `unknown_type`.
  caf::error serve(uint32_t type_id);

  /// Answers request `id` with the TLV payload of a `type_id`. Fails when
  /// the payload does not decode or `id` is not pending (answered, or the
  /// service ended).
  caf::error reply(uint64_t id, uint32_t type_id, const uint8_t* payload, size_t n);

  /// Answers request `id` with an error (the requester gets
  /// `errc::service_failed` and `text`).
  void reply_error(uint64_t id, std::string text);

  /// Sends a request to the node's responder of `type_id` and blocks the
  /// calling thread (never an actor's) for the reply: `no_responder`,
  /// `request_timeout`, the decode error of `payload`, or the responder's
  /// error otherwise.
  caf::expected<untyped_reply> request(uint32_t type_id, const uint8_t* payload,
                                       size_t n, std::chrono::nanoseconds timeout);

  /// The service's counters on its bus.
  service_stats stats() const;

private:
  std::shared_ptr<state> state_;
};

/// Makes a foreign host for one service instance (called on the spawning
/// thread, once per incarnation); may throw `std::runtime_error` with the
/// reason (the start then fails with it).
using foreign_host_maker =
  std::function<std::shared_ptr<foreign_host>(const service_context&)>;

/// A service factory whose instances run `make_host`'s foreign code. The
/// node must have a schema (`node::use_schema`); the instance runs on CAF's
/// worker pool whatever its placement, since the foreign code has its own
/// thread and the actor only answers requests and lifecycle events.
service_factory untyped_service_factory(foreign_host_maker make_host);

} // namespace mycelium
