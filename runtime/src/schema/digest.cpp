#include "mycelium/schema/digest.hpp"

#include <functional>
#include <set>

#include <openssl/sha.h>

namespace mycelium::schema {

std::string effective_default(const schema& s, const field_def& f) {
  if (!f.default_value.empty())
    return f.default_value;
  switch (f.type.kind) {
    case type_kind::scalar:
      return f.type.scalar == scalar_kind::boolean ? "false" : "0";
    case type_kind::string: return "\"\"";
    case type_kind::enumeration: {
      auto* e = s.find_enum(f.type.ref);
      return e ? e->values.front().first : "";
    }
    default: return ""; // bytes, arrays, vectors, messages: empty / zero
  }
}

namespace {

std::string canonical_enum(const enum_def& e) {
  std::string out = "enum " + e.name + " {";
  for (auto& [name, value] : e.values)
    out += name + "=" + std::to_string(value) + ";";
  return out + "}\n";
}

std::string canonical_message(const schema& s, const message_def& m) {
  std::string out = "message " + std::to_string(m.id) + " " + m.name + " {";
  for (auto& f : m.fields) {
    out += std::to_string(f.id) + " " + f.name + " " + to_string(f.type);
    auto d = effective_default(s, f);
    if (!d.empty())
      out += " default=" + d;
    out += ";";
  }
  return out + "}\n";
}

} // namespace

std::string canonical_form(const schema& s) {
  std::string out = "mycelium-schema 1\npackage " + s.package + "\n";
  for (auto& e : s.enums)
    out += canonical_enum(e);
  for (auto& m : s.messages)
    out += canonical_message(s, m);
  return out;
}

std::string canonical_form(const schema& s, const message_def& m) {
  // Collect the transitive closure of referenced types, sorted by name.
  std::set<std::string> enums;
  std::set<std::string> messages;
  std::function<void(const message_def&)> walk = [&](const message_def& x) {
    for (auto& f : x.fields) {
      if (f.type.kind == type_kind::enumeration)
        enums.insert(f.type.ref);
      else if (f.type.kind == type_kind::message && messages.insert(f.type.ref).second)
        if (auto* n = s.find_message(f.type.ref))
          walk(*n);
    }
  };
  walk(m);
  std::string out = "mycelium-message 1\n" + canonical_message(s, m);
  for (auto& name : enums)
    if (auto* e = s.find_enum(name))
      out += canonical_enum(*e);
  for (auto& name : messages)
    if (auto* n = s.find_message(name))
      out += canonical_message(s, *n);
  return out;
}

digest256 sha256(const std::string& bytes) {
  digest256 d;
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
         d.data());
  return d;
}

digest256 schema_digest(const schema& s) {
  return sha256(canonical_form(s));
}

digest256 message_digest(const schema& s, const message_def& m) {
  return sha256(canonical_form(s, m));
}

} // namespace mycelium::schema
