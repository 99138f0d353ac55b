#pragma once

#include <cstdint>

namespace mycelium {

/// What a `port` did with one message the bus offered it.
enum class offer_result : uint8_t {
  /// Taken on the offering thread (written into a ring, say): the bus counts
  /// it delivered.
  delivered,
  /// Taken, and the port counted `delivered` itself (a handler that ran on
  /// the offering thread bumps the subscription's counter as it runs).
  handled,
  /// Not taken here: the bus puts the message into the subscriber's mailbox
  /// as it would without a port (a link's send queue admitted it, or a
  /// service could not run its handler on this thread now).
  enqueue,
  /// Refused by the link's overflow policy (the link counted why): the bus
  /// counts the topic's `refused` and the publisher sees `back_pressured`.
  refused,
};

/// Where the bus offers a subscriber each message before, or in place of,
/// its mailbox: a link's send queue or ring, or a service that can run its
/// handler on the delivering thread. Given to `bus::subscribe` (services) or
/// `bus::subscribe_link` (links); the bus knows nothing else about it.
///
/// The bus counts the subscription's `enqueued` before the offer, so that a
/// handler run inside it may count `delivered`, and takes it back when the
/// port refuses.
///
/// Thread-safety: `offer` is called by any number of publisher threads at
/// once; implementations serialize what they must.
class port {
public:
  virtual ~port();

  /// Offers one value: `*value` is a generated struct of `type_id`, only
  /// read during the call. Must not throw: a publisher is in the middle of
  /// handing the value to every subscriber of its type.
  [[nodiscard]] virtual offer_result offer(uint32_t type_id, const void* value) noexcept = 0;
};

} // namespace mycelium
