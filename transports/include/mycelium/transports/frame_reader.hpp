#pragma once

#include <cstdint>
#include <string>

#include "mycelium/codec.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/transports/link_listener.hpp"
#include "mycelium/wire/frame_header.hpp"

namespace mycelium::transports {

/// Checks the frames of one incoming direction of a link and hands the data
/// path (data and interest frames) to a `link_listener`. Part of the link
/// core: the only code that validates frame headers, sequence numbers and
/// interest, and decodes data, used by `link_protocol` for a link's byte
/// stream and by shared-memory endpoints for their rings. Trusts nothing:
/// every length, flag and id is checked before use.
///
/// Thread-safety: none; owned by one connection.
class frame_reader {
public:
  /// Control frames (a hello lists every type) may exceed a small data limit.
  static constexpr uint32_t control_payload_limit = 1u << 20;

  frame_reader(const schema_descriptor* schema, uint32_t max_payload) noexcept
    : schema_(schema), max_payload_(max_payload) {
  }

  /// Starts a new connection: the next frame must carry sequence number 1.
  void reset() noexcept { rx_seq_ = 0; }

  /// The sequence number of the last frame accepted.
  uint64_t last_sequence() const noexcept { return rx_seq_; }

  /// Checks the next frame at `p`. `n` is what is available: the rest of a
  /// byte stream (`exact` false), or exactly one ring record (`exact` true:
  /// the frame must fill it). Validates the header, the size limits (data:
  /// `max_payload`, control: 1 MiB) and the sequence number, then counts the
  /// frame as received. Returns `truncated` when a stream needs more bytes;
  /// any other error breaks the link and comes with `why`, which names the
  /// sender as `peer`.
  [[nodiscard]] errc next(const uint8_t* p, size_t n, bool exact,
                          wire::frame_header& h, const std::string& peer,
                          std::string& why);

  /// Whether `h` belongs to the data path: a data frame, subscribe or
  /// unsubscribe (everything a shared-memory ring carries).
  static bool is_data_path(const wire::frame_header& h) noexcept {
    if ((h.flags & wire::frame_header::flag_control) == 0)
      return true;
    auto t = static_cast<wire::control_type>(h.type_id);
    return t == wire::control_type::subscribe || t == wire::control_type::unsubscribe;
  }

  /// Handles a data-path frame of an established link. Interest goes to
  /// `on_interest` (a type outside the schema: `on_bad_frame`, the link
  /// stays); data is decoded into a value on the stack for `on_value` (an
  /// undecodable payload: `on_bad_frame`). Returns `none`, or the code of a
  /// broken interest frame or a frame outside the data path (then `why`
  /// says what; the link must reset). `peer` names the sender in texts.
  [[nodiscard]] errc dispatch(const wire::frame_header& h, const uint8_t* payload,
                              link_listener& l, const std::string& peer,
                              std::string& why);

  uint32_t max_payload() const noexcept { return max_payload_; }

private:
  const schema_descriptor* schema_;
  uint32_t max_payload_;
  uint64_t rx_seq_ = 0;
};

/// "data frame of type 5" or "control frame goodbye (0xffff0006)".
std::string describe_frame(const wire::frame_header& h);

} // namespace mycelium::transports
