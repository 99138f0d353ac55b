#include "mycelium/errc.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace mycelium {

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
  return "<invalid errc>";
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
