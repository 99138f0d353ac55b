#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <caf/error.hpp>

namespace mycelium {

class untyped_handle;

/// The far side of an untyped service: a service written in another
/// language (Python today), which runs on its own thread and sees messages
/// as (type id, TLV payload). `untyped_service` calls it; it calls back
/// through the `untyped_handle` it gets in `start`.
///
/// Thread-safety: `deliver` and `request` are called on whatever thread
/// publishes (a CAF worker, the I/O loop, a foreign thread), concurrently;
/// they must only queue and return, never run foreign code or block.
/// `start` and `stop` are called on the service's actor, one at a time.
class foreign_host {
public:
  virtual ~foreign_host();

  /// The service starts: start the foreign code (its `on_start`) on the
  /// foreign side's own thread and call `h->started(...)` once it ran.
  virtual void start(std::shared_ptr<untyped_handle> h) = 0;

  /// A message of a type the foreign side subscribed to.
  virtual void deliver(uint32_t type_id, const uint8_t* payload, size_t n) = 0;

  /// A message as the generated C++ struct (`value` points to one of
  /// `type_id`, valid during the call), for a host that converts the struct
  /// itself instead of decoding bytes (the Python bridge). Returns false
  /// when it does not take this type: `deliver` then gets the encoded
  /// payload. The default takes none.
  virtual bool deliver_value(uint32_t type_id, const void* value);

  /// A request of a type the foreign side serves; it answers with
  /// `untyped_handle::reply` (or `reply_error`) and `id`.
  virtual void request(uint64_t id, uint32_t type_id, const uint8_t* payload,
                       size_t n) = 0;

  /// The service terminates, normally (`reason` empty) or not: stop the
  /// foreign code (its `on_stop`) and return once it stopped, or after a
  /// bounded wait. No `deliver` or `request` follows.
  virtual void stop(const caf::error& reason) = 0;
};

} // namespace mycelium
