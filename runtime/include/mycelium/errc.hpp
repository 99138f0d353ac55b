#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace mycelium {

/// The one project error enum. Control paths carry it inside `caf::error`
/// (category atom "mycelium"); hot paths (the TLV decoder, publish) return it
/// directly, with `errc::none` meaning success.
///
/// Every value is wire-visible: a `refuse` frame carries one as its reason
/// (docs/wire-protocol.md section 4.1 lists them). So every enumerator has an
/// explicit number, pinned by static_asserts in errc.cpp and checked against
/// the document's table by tests/unit/errc_test.cpp: never renumber or reuse
/// a value, only append. One byte, because `caf::error` codes are one byte.
enum class errc : uint8_t {
  none = 0,
  // -- TLV / frame decoding -------------------------------------------------
  truncated = 1,              ///< input ended inside a header, tag or value
  frame_too_large = 2,        ///< payload length over the configured maximum
  bad_frame_header = 3,       ///< reserved header bits set or bad flags
  unknown_type = 4,           ///< type id not in the schema
  bad_wire_type = 5,          ///< field's wire type does not match its schema type
  bad_field_id = 6,           ///< field id 0 in a tag
  duplicate_field = 7,        ///< the same field id twice in one message
  bad_enum_value = 8,         ///< enum value not declared in the schema
  bad_bool = 9,               ///< bool encoded as something other than 0 or 1
  string_too_long = 10,       ///< string over its declared maximum
  invalid_utf8 = 11,          ///< string is not valid UTF-8
  bytes_too_long = 12,        ///< bytes over their declared maximum
  vector_too_long = 13,       ///< vector over its declared maximum
  bad_vector_length = 14,     ///< vector byte length not a multiple of its element size
  array_length_mismatch = 15, ///< fixed array with the wrong element count
  // -- handshake ---------------------------------------------------------------
  bad_magic = 16,             ///< handshake magic is not "MYCL"
  version_mismatch = 17,      ///< protocol versions differ
  schema_mismatch = 18,       ///< schema digests differ
  auth_failed = 19,           ///< authentication proof missing or wrong
  // -- schema / configuration -------------------------------------------------
  schema_invalid = 20,        ///< schema file fails validation
  schema_incompatible = 21,   ///< schema change breaks the compatibility rules
  // -- bus and services -------------------------------------------------------
  no_responder = 22,          ///< request type has no registered responder
  request_timeout = 23,       ///< no reply within the request's timeout
  unknown_service = 24,       ///< no factory registered under that name
  service_failed = 25,        ///< a service handler threw; carries the text
  escalated = 26,             ///< restart budget exhausted, failure escalated
  already_registered = 27,    ///< name or responder registered twice
  // -- inputs of tools (backtest, launcher) ---------------------------------------
  config_invalid = 28,        ///< a configuration file is wrong; names file:line:field
  data_invalid = 29,          ///< an input data file is wrong; names file:line:column
  // -- links (values are on the wire in `refuse`: append only) ------------------
  peer_lost = 30,             ///< peer closed, crashed or stopped sending heartbeats
  sequence_gap = 31,          ///< a frame's sequence number is not the previous + 1
  protocol_violation = 32,    ///< a frame that is not allowed in the link's state
  link_overflow = 33,         ///< the slow peer was disconnected by its overflow policy
  address_in_use = 34,        ///< a live process owns the socket address
  io_failed = 35,             ///< a socket or file operation failed; carries errno text
};

/// The highest assigned `errc` value. A `refuse` with a higher reason still
/// decodes (a newer peer may know more codes); see `is_known`.
constexpr errc errc_last = errc::io_failed;

/// Never assigned: the `reason` of a `refuse` whose number does not fit in
/// one byte (the exact number stays in `wire::refuse::code`).
constexpr errc errc_unrepresentable = static_cast<errc>(255);

/// Whether `x` is one of the enumerators above (not a number a newer build
/// may have assigned since).
constexpr bool is_known(errc x) noexcept {
  return static_cast<uint8_t>(x) <= static_cast<uint8_t>(errc_last);
}

/// Returns the enumerator name, e.g. "string_too_long", or "unknown code N"
/// for a number this build does not know (e.g. from a newer peer's refusal;
/// "unknown code 255 or above" for `errc_unrepresentable`). Thread-safe.
const char* to_string(errc x) noexcept;

/// The error category atom of `errc` inside `caf::error`.
constexpr caf::atom_value errc_category = caf::atom("mycelium");

/// Wraps `x` into a `caf::error` (CAF's ADL hook for `make_error`).
caf::error make_error(errc x);

/// Wraps `x` with a human-readable context, e.g. a file:line or a peer name.
caf::error make_error(errc x, std::string context);

/// Renders any `caf::error`, including ours, without needing an actor system.
std::string render(const caf::error& err);

} // namespace mycelium
