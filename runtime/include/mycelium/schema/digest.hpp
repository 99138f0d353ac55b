#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "mycelium/schema/schema.hpp"
#include "mycelium/wire/handshake.hpp"

namespace mycelium::schema {

using wire::digest256;
using wire::to_hex;

/// The canonical text of a whole schema: package, enums by name, messages by
/// id, fields by id, every default made explicit. Comments, whitespace, key
/// order and field order in the file do not change it; any change to a type,
/// name, id, bound or default does.
std::string canonical_form(const schema& s);

/// Canonical text of one message plus every enum and message it references,
/// transitively (so a change in a nested type changes this message's digest).
std::string canonical_form(const schema& s, const message_def& m);

/// The default a field really has: the declared one, else the type's zero,
/// the empty string or the lowest enum value (canonical text; empty for
/// bytes, arrays, vectors and messages).
std::string effective_default(const schema& s, const field_def& f);

/// SHA-256 of `canonical_form(s)`.
digest256 schema_digest(const schema& s);

/// SHA-256 of `canonical_form(s, m)`.
digest256 message_digest(const schema& s, const message_def& m);

/// SHA-256 of arbitrary bytes (OpenSSL libcrypto).
digest256 sha256(const std::string& bytes);


} // namespace mycelium::schema
