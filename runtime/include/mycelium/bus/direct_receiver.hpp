#pragma once

#include <cstdint>

namespace mycelium {

/// A subscriber that can run its handler at once on the delivering thread,
/// in place of a mailbox hand-off: a loop-placed service, when the delivery
/// happens on its loop's thread and the service is idle (its mailbox empty,
/// no handler of it running). Then a message costs a function call: no
/// mailbox element, no message allocation, no resume.
///
/// Thread-safety: `try_receive` is called by any publisher thread; it
/// refuses (returns false) on every thread but the receiver's own loop.
class direct_receiver {
public:
  virtual ~direct_receiver();

  /// Handles `*value` (a generated struct of `type_id`) now and returns
  /// true, or does nothing and returns false; then the bus enqueues the
  /// message into the subscriber's mailbox as usual. `value` is only read.
  virtual bool try_receive(uint32_t type_id, const void* value) = 0;
};

} // namespace mycelium
