#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mycelium::schema {

/// Where a definition came from, for error messages ("file:line").
struct source_pos {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string str() const {
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
  }
};

enum class scalar_kind : uint8_t {
  u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, boolean,
};

/// Returns the schema spelling ("u8", ..., "bool").
const char* to_string(scalar_kind x) noexcept;

/// Size of a scalar on the wire in bytes.
size_t wire_size(scalar_kind x) noexcept;

enum class type_kind : uint8_t {
  scalar, string, bytes, enumeration, message, array, vector,
};

/// The type of one field. `scalar` is the type itself (scalar) or the element
/// type (array, vector); `ref` names the enum or message; `count` is the array
/// length; `max` bounds strings and bytes (in bytes) and vectors (elements).
struct field_type {
  type_kind kind = type_kind::scalar;
  scalar_kind scalar = scalar_kind::u8;
  std::string ref;
  uint32_t count = 0;
  uint32_t max = 0;
};

/// One field of a message. `default_value` is the canonical text of the
/// declared default, empty when none was declared (then the type's zero, the
/// empty string, or the lowest enum value applies).
struct field_def {
  uint16_t id = 0;
  std::string name;
  field_type type;
  std::string default_value;
  std::string doc;
  source_pos pos;
};

struct message_def {
  uint32_t id = 0;
  std::string name;
  std::vector<field_def> fields; ///< sorted by id
  std::string doc;
  source_pos pos;
};

struct enum_def {
  std::string name;
  std::vector<std::pair<std::string, uint32_t>> values; ///< sorted by value
  std::string doc;
  source_pos pos;
};

/// A validated schema: names and ids unique, every reference resolved, no
/// nested-message cycles. `messages` are sorted by id, `enums` by name.
struct schema {
  std::string package; ///< dotted, e.g. "demo.trading"; the C++ namespace
  std::vector<enum_def> enums;
  std::vector<message_def> messages;
  std::string file;

  const message_def* find_message(const std::string& name) const;
  const message_def* find_message(uint32_t id) const;
  const enum_def* find_enum(const std::string& name) const;
};

/// Whether `s` is a C++ keyword (or alternative token): such names cannot be
/// used verbatim in generated C++.
bool is_cpp_keyword(const std::string& s);

/// Canonical spelling of a field type, e.g. "string[16]", "array<f64,5>".
std::string to_string(const field_type& t);

} // namespace mycelium::schema
