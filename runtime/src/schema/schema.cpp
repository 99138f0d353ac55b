#include "mycelium/schema/schema.hpp"

#include <set>

namespace mycelium::schema {

bool is_cpp_keyword(const std::string& s) {
  static const std::set<std::string> kw{
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor",
    "bool", "break", "case", "catch", "char", "char16_t", "char32_t", "class",
    "compl", "const", "const_cast", "constexpr", "continue", "decltype",
    "default", "delete", "do", "double", "dynamic_cast", "else", "enum",
    "explicit", "export", "extern", "false", "float", "for", "friend", "goto",
    "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept",
    "not", "not_eq", "nullptr", "operator", "or", "or_eq", "private",
    "protected", "public", "register", "reinterpret_cast", "return", "short",
    "signed", "sizeof", "static", "static_assert", "static_cast", "struct",
    "switch", "template", "this", "thread_local", "throw", "true", "try",
    "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual",
    "void", "volatile", "wchar_t", "while", "xor", "xor_eq"};
  return kw.count(s) > 0;
}

const char* to_string(scalar_kind x) noexcept {
  switch (x) {
    case scalar_kind::u8: return "u8";
    case scalar_kind::u16: return "u16";
    case scalar_kind::u32: return "u32";
    case scalar_kind::u64: return "u64";
    case scalar_kind::i8: return "i8";
    case scalar_kind::i16: return "i16";
    case scalar_kind::i32: return "i32";
    case scalar_kind::i64: return "i64";
    case scalar_kind::f32: return "f32";
    case scalar_kind::f64: return "f64";
    case scalar_kind::boolean: return "bool";
  }
  return "?";
}

size_t wire_size(scalar_kind x) noexcept {
  switch (x) {
    case scalar_kind::u8:
    case scalar_kind::i8:
    case scalar_kind::boolean: return 1;
    case scalar_kind::u16:
    case scalar_kind::i16: return 2;
    case scalar_kind::u32:
    case scalar_kind::i32:
    case scalar_kind::f32: return 4;
    default: return 8;
  }
}

std::string to_string(const field_type& t) {
  switch (t.kind) {
    case type_kind::scalar: return to_string(t.scalar);
    case type_kind::string: return "string[" + std::to_string(t.max) + "]";
    case type_kind::bytes: return "bytes[" + std::to_string(t.max) + "]";
    case type_kind::enumeration: return "enum " + t.ref;
    case type_kind::message: return "message " + t.ref;
    case type_kind::array:
      return std::string{"array<"} + to_string(t.scalar) + ","
             + std::to_string(t.count) + ">";
    case type_kind::vector:
      return std::string{"vector<"} + to_string(t.scalar) + ">["
             + std::to_string(t.max) + "]";
  }
  return "?";
}

const message_def* schema::find_message(const std::string& name) const {
  for (auto& m : messages)
    if (m.name == name)
      return &m;
  return nullptr;
}

const message_def* schema::find_message(uint32_t id) const {
  for (auto& m : messages)
    if (m.id == id)
      return &m;
  return nullptr;
}

const enum_def* schema::find_enum(const std::string& name) const {
  for (auto& e : enums)
    if (e.name == name)
      return &e;
  return nullptr;
}

} // namespace mycelium::schema
