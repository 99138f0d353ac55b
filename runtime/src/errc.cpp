#include "mycelium/errc.hpp"

#include <array>
#include <string>

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace mycelium {

// The numbers travel in refusal frames (docs/wire-protocol.md section 4.1):
// pinned here so that an insertion in the middle of the enum breaks the build.
static_assert(static_cast<uint8_t>(errc::none) == 0);
static_assert(static_cast<uint8_t>(errc::truncated) == 1);
static_assert(static_cast<uint8_t>(errc::frame_too_large) == 2);
static_assert(static_cast<uint8_t>(errc::bad_frame_header) == 3);
static_assert(static_cast<uint8_t>(errc::unknown_type) == 4);
static_assert(static_cast<uint8_t>(errc::bad_wire_type) == 5);
static_assert(static_cast<uint8_t>(errc::bad_field_id) == 6);
static_assert(static_cast<uint8_t>(errc::duplicate_field) == 7);
static_assert(static_cast<uint8_t>(errc::bad_enum_value) == 8);
static_assert(static_cast<uint8_t>(errc::bad_bool) == 9);
static_assert(static_cast<uint8_t>(errc::string_too_long) == 10);
static_assert(static_cast<uint8_t>(errc::invalid_utf8) == 11);
static_assert(static_cast<uint8_t>(errc::bytes_too_long) == 12);
static_assert(static_cast<uint8_t>(errc::vector_too_long) == 13);
static_assert(static_cast<uint8_t>(errc::bad_vector_length) == 14);
static_assert(static_cast<uint8_t>(errc::array_length_mismatch) == 15);
static_assert(static_cast<uint8_t>(errc::bad_magic) == 16);
static_assert(static_cast<uint8_t>(errc::version_mismatch) == 17);
static_assert(static_cast<uint8_t>(errc::schema_mismatch) == 18);
static_assert(static_cast<uint8_t>(errc::auth_failed) == 19);
static_assert(static_cast<uint8_t>(errc::schema_invalid) == 20);
static_assert(static_cast<uint8_t>(errc::schema_incompatible) == 21);
static_assert(static_cast<uint8_t>(errc::no_responder) == 22);
static_assert(static_cast<uint8_t>(errc::request_timeout) == 23);
static_assert(static_cast<uint8_t>(errc::unknown_service) == 24);
static_assert(static_cast<uint8_t>(errc::service_failed) == 25);
static_assert(static_cast<uint8_t>(errc::escalated) == 26);
static_assert(static_cast<uint8_t>(errc::already_registered) == 27);
static_assert(static_cast<uint8_t>(errc::config_invalid) == 28);
static_assert(static_cast<uint8_t>(errc::data_invalid) == 29);
static_assert(static_cast<uint8_t>(errc::peer_lost) == 30);
static_assert(static_cast<uint8_t>(errc::sequence_gap) == 31);
static_assert(static_cast<uint8_t>(errc::protocol_violation) == 32);
static_assert(static_cast<uint8_t>(errc::link_overflow) == 33);
static_assert(static_cast<uint8_t>(errc::address_in_use) == 34);
static_assert(static_cast<uint8_t>(errc::io_failed) == 35);
static_assert(errc_last == errc::io_failed,
              "a new errc is appended: move errc_last, pin its number above "
              "and add it to docs/wire-protocol.md section 4.1");
static_assert(static_cast<uint8_t>(errc_last) < static_cast<uint8_t>(errc_unrepresentable));

namespace {

/// "unknown code N" for every number without an enumerator, built once
/// (thread-safe static initialisation), so that to_string stays noexcept
/// and returns a pointer that lives as long as the program.
const char* unknown_code_text(uint8_t n) noexcept {
  static const std::array<std::string, 256> texts = [] {
    std::array<std::string, 256> t;
    for (size_t i = 0; i < t.size(); ++i)
      t[i] = "unknown code " + std::to_string(i);
    t[255] = "unknown code 255 or above";
    return t;
  }();
  return texts[n].c_str();
}

} // namespace

const char* to_string(errc x) noexcept {
  switch (x) {
    case errc::none: return "none";
    case errc::truncated: return "truncated";
    case errc::frame_too_large: return "frame_too_large";
    case errc::bad_frame_header: return "bad_frame_header";
    case errc::unknown_type: return "unknown_type";
    case errc::bad_wire_type: return "bad_wire_type";
    case errc::bad_field_id: return "bad_field_id";
    case errc::duplicate_field: return "duplicate_field";
    case errc::bad_enum_value: return "bad_enum_value";
    case errc::bad_bool: return "bad_bool";
    case errc::string_too_long: return "string_too_long";
    case errc::invalid_utf8: return "invalid_utf8";
    case errc::bytes_too_long: return "bytes_too_long";
    case errc::vector_too_long: return "vector_too_long";
    case errc::bad_vector_length: return "bad_vector_length";
    case errc::array_length_mismatch: return "array_length_mismatch";
    case errc::bad_magic: return "bad_magic";
    case errc::version_mismatch: return "version_mismatch";
    case errc::schema_mismatch: return "schema_mismatch";
    case errc::auth_failed: return "auth_failed";
    case errc::schema_invalid: return "schema_invalid";
    case errc::schema_incompatible: return "schema_incompatible";
    case errc::no_responder: return "no_responder";
    case errc::request_timeout: return "request_timeout";
    case errc::unknown_service: return "unknown_service";
    case errc::service_failed: return "service_failed";
    case errc::escalated: return "escalated";
    case errc::already_registered: return "already_registered";
    case errc::config_invalid: return "config_invalid";
    case errc::data_invalid: return "data_invalid";
    case errc::peer_lost: return "peer_lost";
    case errc::sequence_gap: return "sequence_gap";
    case errc::protocol_violation: return "protocol_violation";
    case errc::link_overflow: return "link_overflow";
    case errc::address_in_use: return "address_in_use";
    case errc::io_failed: return "io_failed";
  }
  return unknown_code_text(static_cast<uint8_t>(x));
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), errc_category};
}

caf::error make_error(errc x, std::string context) {
  return caf::error{static_cast<uint8_t>(x), errc_category,
                    caf::make_message(std::move(context))};
}

std::string render(const caf::error& err) {
  if (!err)
    return "no error";
  std::string out;
  if (err.category() == errc_category)
    out = to_string(static_cast<errc>(err.code()));
  else if (err.category() == caf::atom("system"))
    out = caf::to_string(static_cast<caf::sec>(err.code()));
  else
    out = caf::to_string(err);
  const auto& ctx = err.context();
  if (!ctx.empty()) {
    out += ": ";
    if (ctx.size() == 1 && ctx.match_element<std::string>(0))
      out += ctx.get_as<std::string>(0);
    else
      out += caf::to_string(ctx);
  }
  return out;
}

} // namespace mycelium
