#pragma once

#include <string>

#include <caf/expected.hpp>

#include "mycelium/schema/schema.hpp"

namespace mycelium::schema {

/// Reads and validates a schema file (TOML, see docs/schema.md). On failure
/// the error is `errc::schema_invalid` whose context lists every problem as
/// "file:line: what is wrong (what to do)". Thread-safe.
caf::expected<schema> parse_file(const std::string& path);

/// Same for schema text held in memory; `name` is used in messages.
caf::expected<schema> parse_string(const std::string& text,
                                   const std::string& name);

} // namespace mycelium::schema
