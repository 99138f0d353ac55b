#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "mycelium/errc.hpp"
#include "mycelium/wire/frame_header.hpp"

namespace mycelium::wire {

/// Protocol version carried in every hello; peers must match exactly.
constexpr uint16_t protocol_version = 1;

/// "MYCL" as the bytes 4D 59 43 4C on the wire.
constexpr uint32_t hello_magic = 0x4C43594D;

using digest256 = std::array<uint8_t, 32>;
using digest128 = std::array<uint8_t, 16>;

/// One message type of a schema as announced in a hello: lets the refusing
/// side name the first type whose definition differs.
struct type_digest {
  uint32_t type_id = 0;
  std::string name;
  digest256 digest{};
};

/// Authentication schemes a hello can announce (field 10, `auth_scheme`).
/// Wire-visible: pinned numbers.
enum class auth_scheme : uint8_t {
  /// No secret configured; no `auth` frame follows the hello.
  none = 0,
  /// Challenge and response: after the hellos, each side sends an `auth`
  /// frame with HMAC-SHA256 over the *peer's* nonce (transports/auth.hpp).
  hmac_sha256 = 1,
};

/// The first frame on every link, in both directions (control type `hello`).
/// Payload fields (TLV): 1 magic u32, 2 version u16, 3 schema_digest
/// bytes[32], 4 node string, 5 service string, 6 pid u32, 7 auth_proof bytes
/// (retired: written empty, read and ignored), 8 type list (see
/// wire-protocol.md), 9 nonce bytes[16] (random per connection; the
/// challenge the peer's `auth` frame answers), 10 auth_scheme u8 (written
/// only when not `none`). All fields but 7, 9 and 10 are required: a hello
/// without them is refused.
struct hello {
  uint32_t magic = hello_magic;
  uint16_t version = protocol_version;
  digest256 schema_digest{};
  std::string node;
  std::string service;
  uint32_t pid = 0;
  std::vector<uint8_t> auth_proof;
  std::vector<type_digest> types;
  digest128 nonce{};
  /// The raw number of field 10: `auth_scheme` values, or one this build
  /// does not know (the link refuses it when it matters).
  uint8_t auth_scheme_id = static_cast<uint8_t>(auth_scheme::none);
};

/// The answer to an unacceptable hello (control type `refuse`), sent before
/// the link is closed. Payload: 1 reason u32 (an errc value), 2 text string.
struct refuse {
  /// What the encoder writes as field 1. After decoding: the received number
  /// as an `errc` (possibly one this build does not know, see `is_known`),
  /// or `errc_unrepresentable` for a number above 255.
  errc reason = errc::none;
  std::string text;
  /// After decoding: field 1 exactly as received. The encoder writes
  /// `reason`, or `code` when `reason` is `errc_unrepresentable`.
  uint32_t code = 0;
};

/// "schema_mismatch", or "unknown code N" (with the received N, also above
/// 255) for a reason this build does not know.
std::string reason_name(const refuse& x);

/// Sent once in each direction after the hellos when the hellos announce
/// `auth_scheme::hmac_sha256` (control type `auth`). Payload: 1 proof
/// bytes[32], see transports/auth.hpp and wire-protocol.md section 9.4.
struct auth {
  digest256 proof{};
};

/// Appends one complete frame (header + payload) carrying `x`.
void encode_frame(std::vector<uint8_t>& out, const hello& x, uint64_t seq);
void encode_frame(std::vector<uint8_t>& out, const refuse& x, uint64_t seq);
void encode_frame(std::vector<uint8_t>& out, const auth& x, uint64_t seq);

/// Appends a `subscribe` or `unsubscribe` frame (payload: 1 type_id u32).
void encode_interest(std::vector<uint8_t>& out, control_type type,
                     uint32_t type_id, uint64_t seq);

/// Appends a `heartbeat` frame (empty payload).
void encode_heartbeat(std::vector<uint8_t>& out, uint64_t seq);

/// Appends a `goodbye` frame (empty payload).
void encode_goodbye(std::vector<uint8_t>& out, uint64_t seq);

/// What a shared-memory link's control channel exchanges once the hello
/// passed (control type `shm_attach`): the listener names the segment it
/// created, the connector answers with the same name once it has mapped it.
/// Both name the abstract Unix socket that wakes their I/O loop (doorbell).
/// Payload: 1 segment string, 2 doorbell string.
struct shm_attach {
  std::string segment;
  std::string doorbell;
};

/// Appends a `shm_attach` frame.
void encode_frame(std::vector<uint8_t>& out, const shm_attach& x, uint64_t seq);

/// Decodes a `shm_attach` payload; both names are required, at most 255 bytes.
errc decode(const uint8_t* payload, size_t n, shm_attach& out);

/// Decodes a subscribe / unsubscribe payload; the id must be a schema id.
errc decode_interest(const uint8_t* payload, size_t n, uint32_t& type_id);

/// Decodes a hello / refuse / auth payload. Bounds-checked; never throws on
/// bad input. A refusal's reason is any u32 (unknown codes decode, see
/// `refuse::code`); an auth proof must be exactly 32 bytes and is required.
errc decode(const uint8_t* payload, size_t n, hello& out);
errc decode(const uint8_t* payload, size_t n, refuse& out);
errc decode(const uint8_t* payload, size_t n, auth& out);

/// Lower-case hex of a digest.
std::string to_hex(const digest256& d);

/// Decides whether a link may be established. Returns a refusal with
/// `reason == errc::none` when it may. Otherwise the text names both nodes,
/// both digests and the first message type that differs, e.g.
/// "schema digest mismatch: local node 'a' service 't' (pid 1) has 3f2c..,
///  remote node 'b' service 's' (pid 2) has 91de..; first differing message
///  type: quote (id 1). Rebuild both sides from the same schema file."
/// Authentication is checked by the link (transports/link_protocol.hpp).
refuse check_hello(const hello& local, const hello& remote);

} // namespace mycelium::wire
