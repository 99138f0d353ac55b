#pragma once

#include <cstddef>
#include <cstdint>

#include "mycelium/errc.hpp"
#include "mycelium/wire/byte_order.hpp"

namespace mycelium::wire {

/// Every frame on every link that leaves a process starts with this fixed,
/// little-endian, 24-byte header, followed by `payload_length` payload bytes
/// (a TLV message, see tlv.hpp). Frames placed in shared memory start on an
/// 8-byte boundary; the header size is a multiple of 8 for that reason.
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +---------------------------------------------------------------+
/// |                    payload_length (u32)                       |  0
/// +---------------------------------------------------------------+
/// |                       type_id (u32)                           |  4
/// +---------------------------------------------------------------+
/// |                                                               |  8
/// +                      sequence (u64)                           +
/// |                                                               | 12
/// +-------------------------------+-------------------------------+
/// |          flags (u16)          |      reserved0 (u16) = 0      | 16
/// +-------------------------------+-------------------------------+
/// |                     reserved1 (u32) = 0                       | 20
/// +---------------------------------------------------------------+
/// |                  payload (payload_length bytes) ...           | 24
/// ```
///
/// - `type_id`: a schema message id (1 .. 0xFFFEFFFF) or, with flag
///   `control`, a control frame id (0xFFFF0000 and up, see control_type).
/// - `sequence`: per link and direction, starts at 1, +1 per frame; a gap is
///   a link error.
/// - reserved fields must be zero; a decoder rejects anything else so the
///   fields can gain a meaning in a later protocol version.
struct frame_header {
  static constexpr size_t size = 24;
  static constexpr size_t off_payload_length = 0;
  static constexpr size_t off_type_id = 4;
  static constexpr size_t off_sequence = 8;
  static constexpr size_t off_flags = 16;
  static constexpr size_t off_reserved0 = 18;
  static constexpr size_t off_reserved1 = 20;

  /// Flag bits.
  static constexpr uint16_t flag_control = 0x0001;
  static constexpr uint16_t known_flags = flag_control;

  uint32_t payload_length = 0;
  uint32_t type_id = 0;
  uint64_t sequence = 0;
  uint16_t flags = 0;

  /// Writes the 24 header bytes to `out`.
  void write(uint8_t* out) const noexcept {
    store_u32(out + off_payload_length, payload_length);
    store_u32(out + off_type_id, type_id);
    store_u64(out + off_sequence, sequence);
    store_u16(out + off_flags, flags);
    store_u16(out + off_reserved0, 0);
    store_u32(out + off_reserved1, 0);
  }

  /// Parses and validates a header from `n` bytes at `in`. Checks the
  /// length against `max_payload` and that `n` covers the whole frame.
  /// Never reads past `in + n`.
  static errc read(const uint8_t* in, size_t n, uint32_t max_payload,
                   frame_header& out) noexcept {
    if (n < size)
      return errc::truncated;
    out.payload_length = load_u32(in + off_payload_length);
    out.type_id = load_u32(in + off_type_id);
    out.sequence = load_u64(in + off_sequence);
    out.flags = load_u16(in + off_flags);
    if ((out.flags & ~known_flags) != 0 || load_u16(in + off_reserved0) != 0
        || load_u32(in + off_reserved1) != 0)
      return errc::bad_frame_header;
    if (out.payload_length > max_payload)
      return errc::frame_too_large;
    if (n - size < out.payload_length)
      return errc::truncated;
    return errc::none;
  }
};

static_assert(frame_header::size % 8 == 0, "frames must stay 8-byte aligned");
static_assert(frame_header::off_reserved1 + 4 == frame_header::size);
static_assert(frame_header::off_sequence % 8 == 0);

/// Control frame type ids (flag `control` set). Their payloads are TLV
/// messages defined in docs/wire-protocol.md; `hello` and `refuse` are
/// implemented in handshake.hpp.
enum class control_type : uint32_t {
  hello = 0xFFFF0001,       ///< handshake, first frame in each direction
  refuse = 0xFFFF0002,      ///< handshake refused, carries the reason
  subscribe = 0xFFFF0003,   ///< interest in a type id (transports)
  unsubscribe = 0xFFFF0004, ///< interest withdrawn (transports)
  heartbeat = 0xFFFF0005,   ///< liveness (transports)
  goodbye = 0xFFFF0006,     ///< clean close: nothing follows (transports)
  shm_attach = 0xFFFF0007,  ///< shared-memory segment and doorbell (shm links)
  auth = 0xFFFF0008,        ///< proof of the shared secret over the peer's nonce
};

// The ids are on the wire (docs/wire-protocol.md section 1.2): pinned.
static_assert(static_cast<uint32_t>(control_type::hello) == 0xFFFF0001);
static_assert(static_cast<uint32_t>(control_type::refuse) == 0xFFFF0002);
static_assert(static_cast<uint32_t>(control_type::subscribe) == 0xFFFF0003);
static_assert(static_cast<uint32_t>(control_type::unsubscribe) == 0xFFFF0004);
static_assert(static_cast<uint32_t>(control_type::heartbeat) == 0xFFFF0005);
static_assert(static_cast<uint32_t>(control_type::goodbye) == 0xFFFF0006);
static_assert(static_cast<uint32_t>(control_type::shm_attach) == 0xFFFF0007);
static_assert(static_cast<uint32_t>(control_type::auth) == 0xFFFF0008);

/// The smallest control type id.
constexpr uint32_t first_control_type_id = 0xFFFF0000;

/// The smallest id of the runtime's own node-local messages (for example
/// `transports::link_event`); they never cross a link. Schema type ids must
/// stay below it.
constexpr uint32_t first_local_type_id = 0xFFFE0000;

/// Default maximum payload size of a frame (1 MiB); links configure theirs.
constexpr uint32_t default_max_payload = 1u << 20;

} // namespace mycelium::wire
