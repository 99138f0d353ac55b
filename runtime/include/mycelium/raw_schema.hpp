#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "mycelium/codec.hpp"

namespace mycelium {

/// A message of a schema this process has no generated C++ code for: its
/// type id and its TLV payload, as another language's encoder wrote it (a
/// Python or OCaml message class). Travels on the bus like a generated
/// struct; links write the payload as it is. Plain data.
struct raw_value {
  uint32_t type_id = 0;
  std::vector<uint8_t> payload;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, raw_value& x) {
  return f(caf::meta::type_name("mycelium.raw_value"), x.type_id, x.payload);
}

/// A schema known only by its announcement: package, digest and the
/// (type id, name, digest) list, as a foreign runtime's generated module
/// gives them. Its descriptor carries `raw_value`s: links check frames,
/// sequence numbers, interest and the type id against the list, and hand
/// payloads on unchanged; the payload's fields are checked by whoever
/// decodes them (the foreign runtime's strict decoder).
///
/// The handshake is the typed schema's: a peer with generated C++ code for
/// the same schema sees the same digest and type list.
///
/// Thread-safety: immutable after `make`; share freely.
class raw_schema {
public:
  /// Fails with `schema_invalid` for an empty package, no types, a type id
  /// twice or a type id with the control bit (0x80000000) set.
  static caf::expected<std::shared_ptr<const raw_schema>>
  make(std::string package, wire::digest256 digest, std::vector<wire::type_digest> types);

  /// The descriptor links and untyped services use (its values are
  /// `raw_value`s). Valid as long as this object.
  const schema_descriptor& descriptor() const noexcept { return descriptor_; }

private:
  raw_schema() = default;
  schema_descriptor descriptor_;
};

} // namespace mycelium
