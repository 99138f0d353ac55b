#include "mycelium/raw_schema.hpp"

#include <set>

#include <caf/actor_system_config.hpp>
#include <caf/make_message.hpp>

namespace mycelium {

namespace {

// The descriptor's functions have no context pointer: a raw value carries
// its own type id, and the type list is checked by the callers that need it
// (the frame reader, the untyped service) through `find`.

errc raw_decode(uint32_t type_id, const uint8_t* p, size_t n, caf::message& out) {
  out = caf::make_message(raw_value{type_id, std::vector<uint8_t>(p, p + n)});
  return errc::none;
}

bool raw_encode(const caf::message& msg, std::vector<uint8_t>& out, uint32_t& type_id) {
  if (msg.size() != 1 || !msg.match_element<raw_value>(0))
    return false;
  auto& v = msg.get_as<raw_value>(0);
  out.insert(out.end(), v.payload.begin(), v.payload.end());
  type_id = v.type_id;
  return true;
}

void raw_add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<raw_value>("mycelium.raw_value");
}

errc raw_visit(uint32_t type_id, const uint8_t* p, size_t n, void* ctx, value_visitor fn) {
  raw_value v{type_id, std::vector<uint8_t>(p, p + n)};
  fn(ctx, type_id, &v);
  return errc::none;
}

bool raw_encode_value(uint32_t, const void* value, wire::writer& w) {
  auto& v = *static_cast<const raw_value*>(value);
  w.raw(v.payload.data(), v.payload.size());
  return true;
}

caf::message raw_box(uint32_t, void* value) {
  return caf::make_message(std::move(*static_cast<raw_value*>(value)));
}

} // namespace

caf::expected<std::shared_ptr<const raw_schema>>
raw_schema::make(std::string package, wire::digest256 digest,
                 std::vector<wire::type_digest> types) {
  if (package.empty())
    return make_error(errc::schema_invalid, "raw schema: the package name is empty");
  if (types.empty())
    return make_error(errc::schema_invalid,
                      "raw schema '" + package + "': it has no message types");
  std::set<uint32_t> seen;
  for (auto& t : types) {
    if ((t.type_id & 0x80000000u) != 0)
      return make_error(errc::schema_invalid,
                        "raw schema '" + package + "': type '" + t.name + "' has id "
                          + std::to_string(t.type_id) + ", which has the control bit set");
    if (!seen.insert(t.type_id).second)
      return make_error(errc::schema_invalid,
                        "raw schema '" + package + "': type id " + std::to_string(t.type_id)
                          + " appears twice");
  }
  auto s = std::shared_ptr<raw_schema>{new raw_schema};
  auto& d = s->descriptor_;
  d.package = std::move(package);
  d.digest = digest;
  d.types = std::move(types);
  d.decode = &raw_decode;
  d.encode = &raw_encode;
  d.add_message_types = &raw_add_message_types;
  d.visit = &raw_visit;
  d.encode_value = &raw_encode_value;
  d.box = &raw_box;
  d.index_of = nullptr; // `find` searches the list
  return std::shared_ptr<const raw_schema>{std::move(s)};
}

} // namespace mycelium
