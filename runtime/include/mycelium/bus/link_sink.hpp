#pragma once

#include <cstdint>

namespace mycelium {

/// A link that takes its copy of a published message on the publisher's own
/// thread instead of through an actor mailbox (the shared-memory link writes
/// it straight into its ring). Subscribed with `bus::subscribe_link`.
///
/// Thread-safety: `push` is called by any number of publisher threads at
/// once; implementations serialize what they must.
class link_sink {
public:
  virtual ~link_sink();

  /// Hands over one value: `*value` is a generated struct of `type_id`, only
  /// read during the call (the type id travels with it, so the link encodes
  /// without searching the schema). Returns false when the link's overflow
  /// policy refused it (the link counts it, the publisher sees
  /// `back_pressured`). A message the link has to drop for another reason
  /// (link down, too large) is counted by the link and returns true.
  virtual bool push(uint32_t type_id, const void* value) noexcept = 0;
};

} // namespace mycelium
