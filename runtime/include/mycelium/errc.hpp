#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace mycelium {

/// The one project error enum. Control paths carry it inside `caf::error`
/// (category atom "mycelium"); hot paths (the TLV decoder, publish) return it
/// directly, with `errc::none` meaning success.
enum class errc : uint8_t {
  none = 0,
  // -- TLV / frame decoding -------------------------------------------------
  truncated,              ///< input ended inside a header, tag or value
  frame_too_large,        ///< payload length over the configured maximum
  bad_frame_header,       ///< reserved header bits set or bad flags
  unknown_type,           ///< type id not in the schema
  bad_wire_type,          ///< field's wire type does not match its schema type
  bad_field_id,           ///< field id 0 in a tag
  duplicate_field,        ///< the same field id twice in one message
  bad_enum_value,         ///< enum value not declared in the schema
  bad_bool,               ///< bool encoded as something other than 0 or 1
  string_too_long,        ///< string over its declared maximum
  invalid_utf8,           ///< string is not valid UTF-8
  bytes_too_long,         ///< bytes over their declared maximum
  vector_too_long,        ///< vector over its declared maximum
  bad_vector_length,      ///< vector byte length not a multiple of its element size
  array_length_mismatch,  ///< fixed array with the wrong element count
  // -- handshake ---------------------------------------------------------------
  bad_magic,              ///< handshake magic is not "MYCL"
  version_mismatch,       ///< protocol versions differ
  schema_mismatch,        ///< schema digests differ
  auth_failed,            ///< authentication proof missing or wrong
  // -- schema / configuration -------------------------------------------------
  schema_invalid,         ///< schema file fails validation
  schema_incompatible,    ///< schema change breaks the compatibility rules
  // -- bus and services -------------------------------------------------------
  no_responder,           ///< request type has no registered responder
  request_timeout,        ///< no reply within the request's timeout
  unknown_service,        ///< no factory registered under that name
  service_failed,         ///< a service handler threw; carries the text
  escalated,              ///< restart budget exhausted, failure escalated
  already_registered,     ///< name or responder registered twice
  // -- inputs of tools (backtest, launcher) ---------------------------------------
  config_invalid,         ///< a configuration file is wrong; names file:line:field
  data_invalid,           ///< an input data file is wrong; names file:line:column
  // -- links (values are on the wire in `refuse`: append only) ------------------
  peer_lost,              ///< peer closed, crashed or stopped sending heartbeats
  sequence_gap,           ///< a frame's sequence number is not the previous + 1
  protocol_violation,     ///< a frame that is not allowed in the link's state
  link_overflow,          ///< the slow peer was disconnected by its overflow policy
  address_in_use,         ///< a live process owns the socket address
  io_failed,              ///< a socket or file operation failed; carries errno text
};

/// The highest `errc` value (decoders reject anything above it).
constexpr errc errc_last = errc::io_failed;

/// Returns the enumerator name, e.g. "string_too_long".
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
