#pragma once

#include <cstdint>
#include <string>

#include <caf/message.hpp>

#include "mycelium/errc.hpp"
#include "mycelium/wire/handshake.hpp"

namespace mycelium::transports {

/// What the link core (`link_protocol`, `frame_reader`) reports to its
/// transport while it consumes frames. Implemented by each transport's
/// connection.
///
/// Thread-safety: called on the thread that feeds the frames in.
class link_listener {
public:
  virtual ~link_listener();
  /// The peer's hello passed every check (and, with a secret, its `auth`
  /// frame verified); data may flow.
  virtual void on_established(const wire::hello& peer) = 0;
  /// We refused the peer; the refuse frame is in the output buffer. Every
  /// failure before `on_established` ends this way (never a silent close).
  virtual void on_refusing(const wire::refuse& why) = 0;
  /// The peer refused us. `why.reason` may be a code this build does not
  /// know (a newer peer): `wire::reason_name(why)` says "unknown code N".
  virtual void on_refused(const wire::refuse& why) = 0;
  /// The peer gained (`add`) or lost interest in `type_id`.
  virtual void on_interest(uint32_t type_id, bool add) = 0;
  /// A data frame decoded into one message of the schema.
  virtual void on_data(uint32_t type_id, caf::message msg) = 0;
  /// A data frame decoded into `*value`, a generated struct of `type_id` on
  /// the decoder's stack, valid (and movable-from) during the call only.
  /// Transports that can hand values on without a message override this;
  /// the default boxes the value (`box`) and calls `on_data`.
  virtual void on_value(uint32_t type_id, void* value,
                        caf::message (*box)(uint32_t type_id, void* value));
  /// The peer is closing the link on purpose (control frame `goodbye`).
  virtual void on_goodbye() = 0;
  /// A data frame whose payload failed to decode (dropped, counted).
  virtual void on_bad_frame(errc code, const std::string& text) = 0;
  /// The byte stream is broken (bad header, sequence gap, protocol
  /// violation): the transport must reset the connection.
  virtual void on_error(errc code, const std::string& text) = 0;
  /// The peer named its shared-memory segment and doorbell. Returns
  /// `errc::none`, or a code and `why` to reset the connection with. The
  /// default refuses: only shared-memory links expect this frame.
  virtual errc on_shm_attach(const wire::shm_attach& x, std::string& why);
};

} // namespace mycelium::transports
