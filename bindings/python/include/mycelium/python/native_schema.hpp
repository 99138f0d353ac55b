#pragma once

#include <cstdint>
#include <memory>

#include <caf/config.hpp>
#include <caf/message.hpp>

#include "mycelium/codec.hpp"
#include "mycelium/python/message_bridge.hpp"

/// A schema's native module: the generated C++ code of one schema, compiled
/// into a small Python extension `<module>_native` beside the generated
/// Python module `<module>` (`mycelium_add_schema(... PYTHON <dir>)` builds
/// it). A Python process's runtime (`mycelium.Node`) takes the schema from
/// it instead of from the Python module's announcement, so its links
/// decode frames into the generated structs, and the Python bridge converts
/// them to Python objects and back, as in a C++ node: no pure-Python codec
/// on the path (docs/python.md, section 9).
///
/// The module hands a `native_schema` to the runtime in a capsule. The two
/// are separate shared objects, each with its own copy of the headers, so
/// the record starts with a layout tag that both compute from the headers
/// they were built with; the runtime refuses a module whose tag differs.
namespace mycelium::python {

/// The capsule's name (`PyCapsule_GetPointer` checks it).
inline constexpr const char* native_schema_capsule = "mycelium.native_schema";

/// Bumped when the record or the types it hands over change meaning.
inline constexpr uint32_t native_schema_version = 1;

/// The record a native module exports. Thread-safety: immutable; lives as
/// long as the module (CPython never unloads extension modules).
struct native_schema {
  /// `layout_tag()` of the module's build.
  uint64_t layout = 0;
  /// The schema's generated descriptor (encode, decode, visit, box ...).
  const schema_descriptor* descriptor = nullptr;
  /// Makes the schema's bridge (message_bridge.hpp) for `descriptor`.
  std::unique_ptr<schema_bridge> (*make_bridge)() = nullptr;

  /// What both sides must agree on: the record's version, CAF's version and
  /// the sizes of the types that cross between the two shared objects.
  static constexpr uint64_t layout_tag() noexcept {
    uint64_t h = 1469598103934665603ull; // FNV-1a over the parts
    for (uint64_t part :
         {uint64_t{native_schema_version}, uint64_t{CAF_VERSION}, uint64_t{sizeof(native_schema)},
          uint64_t{sizeof(schema_descriptor)}, uint64_t{sizeof(schema_bridge)},
          uint64_t{sizeof(bridge_entry)}, uint64_t{sizeof(class_info)},
          uint64_t{sizeof(field_info)}, uint64_t{sizeof(caf::message)}})
      h = (h ^ part) * 1099511628211ull;
    return h;
  }
};

/// The record of a generated schema (`Types`: its `detail::message_types`,
/// `descriptor`: its `descriptor` function), for a native module's init.
template <class Types, const schema_descriptor& (*Descriptor)()>
const native_schema& native_schema_of() {
  static const native_schema record{
    native_schema::layout_tag(), &Descriptor(),
    [] { return make_bridge<Types>(Descriptor()); }};
  return record;
}

} // namespace mycelium::python
