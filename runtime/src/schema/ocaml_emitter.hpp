#pragma once

#include <memory>

#include "mycelium/schema/emitter.hpp"

namespace mycelium::schema {

/// The OCaml back-end (`--lang ocaml`): one module per schema for the
/// bindings/ocaml runtime. Stateless and thread-safe, like every emitter.
/// See docs/ocaml.md.
std::unique_ptr<emitter> make_ocaml_emitter();

} // namespace mycelium::schema
