#pragma once

#include <cstdint>

namespace mycelium::transports {

/// A link connection that a publisher on its own thread (the node's I/O
/// loop: a loop-placed service, or a link forwarding what it received)
/// hands a message to directly, so that the frame is written from the
/// publishing thread without a trip through the link's mailbox. Installed
/// in the connection's `send_gate`.
///
/// Thread-safety: called on the gate's draining thread only.
class direct_writer {
public:
  virtual ~direct_writer();

  /// Writes `*value`, a generated struct of `type_id`, towards the peer. Its
  /// send-queue slot is claimed; a message that cannot be written is
  /// counted by the link and its slot freed.
  virtual void write(uint32_t type_id, const void* value) noexcept = 0;
};

} // namespace mycelium::transports
