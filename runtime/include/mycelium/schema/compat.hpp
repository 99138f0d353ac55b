#pragma once

#include <string>
#include <vector>

#include "mycelium/schema/schema.hpp"

namespace mycelium::schema {

/// One observation when comparing two schema versions.
struct compat_finding {
  bool breaking = false; ///< violates the rules in docs/schema.md
  std::string text;      ///< e.g. "message quote field 2 'bid': type changed ..."
};

/// Compares `old_s` with `new_s` by the written rules of docs/schema.md
/// ("Evolution rules"). The change is compatible when no finding is breaking.
std::vector<compat_finding> check_compat(const schema& old_s,
                                         const schema& new_s);

} // namespace mycelium::schema
