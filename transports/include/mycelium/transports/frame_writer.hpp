#pragma once

#include <cstdint>
#include <vector>

#include <caf/message.hpp>

#include "mycelium/codec.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/wire/frame_header.hpp"

namespace mycelium::transports {

/// Writes the frames of one outgoing direction of a link, numbering them:
/// data frames (from a value with its type id, or from a message), interest,
/// heartbeats and other control frames. Part of the link core: the only
/// code that lays out frames, used by `link_protocol` for a link's byte
/// stream and by shared-memory channels for their rings, so every transport
/// writes the same bytes.
///
/// Thread-safety: none; its owner serializes (a ring's channel holds its
/// lock while it writes).
class frame_writer {
public:
  frame_writer(const schema_descriptor* schema, uint32_t max_payload) noexcept
    : schema_(schema), max_payload_(max_payload) {
  }

  /// Starts a new connection: the next frame gets sequence number 1.
  void reset() noexcept { tx_seq_ = 0; }

  /// Appends the frame of `*value` (a generated struct of `type_id`).
  /// Returns `frame_too_large` (nothing appended) over `max_payload` and
  /// `unknown_type` for a type outside the schema.
  [[nodiscard]] errc write_value(uint32_t type_id, const void* value,
                                 std::vector<uint8_t>& out);

  /// Same for a message holding one generated struct.
  [[nodiscard]] errc write_message(const caf::message& msg, std::vector<uint8_t>& out);

  /// For writers that place the frame themselves (into a ring slot): the
  /// payload of `*value` only, into `payload` (cleared first); same errors
  /// as `write_value`. Takes no sequence number: `seal` does, once the
  /// frame has room.
  [[nodiscard]] errc encode_payload(uint32_t type_id, const void* value,
                                    std::vector<uint8_t>& payload) const;

  /// Encodes the payload of `*value` in place into `[dst, dst + capacity)`
  /// (a claimed ring slot) and sets `n` to its size. Returns `truncated` when
  /// it does not fit (nothing usable was written; `n` says what it needs),
  /// and the errors of `write_value`. Takes no sequence number.
  [[nodiscard]] errc encode_payload_into(uint32_t type_id, const void* value,
                                         uint8_t* dst, size_t capacity,
                                         size_t& n) const;

  /// The header of the next frame (takes its sequence number).
  wire::frame_header seal(uint32_t type_id, uint32_t payload_length,
                          uint8_t flags = 0) noexcept {
    wire::frame_header h;
    h.payload_length = payload_length;
    h.type_id = type_id;
    h.flags = flags;
    h.sequence = ++tx_seq_;
    return h;
  }

  void write_interest(uint32_t type_id, bool add, std::vector<uint8_t>& out);
  void write_heartbeat(std::vector<uint8_t>& out);
  /// Announces a clean close; nothing may follow it.
  void write_goodbye(std::vector<uint8_t>& out);

  /// Appends a control frame holding `x` (hello, refuse, auth, shm_attach).
  template <class Control>
  void write_control(const Control& x, std::vector<uint8_t>& out) {
    wire::encode_frame(out, x, ++tx_seq_);
  }

  /// The frame written last did not go out (its ring was full): its
  /// sequence number goes to the next frame.
  void unwrite() noexcept { --tx_seq_; }

  /// Type id and payload size of the last data frame tried (for errors).
  uint32_t last_type_id() const noexcept { return last_type_id_; }
  size_t last_payload_size() const noexcept { return last_payload_size_; }

  uint32_t max_payload() const noexcept { return max_payload_; }

private:
  /// Checks the payload just appended at `out[start + header..]`, then
  /// writes its header at `start` (or removes it again).
  errc finish_data(uint32_t type_id, size_t start, std::vector<uint8_t>& out);

  const schema_descriptor* schema_;
  uint32_t max_payload_;
  uint64_t tx_seq_ = 0;
  uint32_t last_type_id_ = 0;
  size_t last_payload_size_ = 0;
};

} // namespace mycelium::transports
