#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mycelium/schema/schema.hpp"

namespace mycelium::schema {

/// A code generator back-end. One per target language; C++ ships now, Python
/// and OCaml plug in here. Emitters are stateless and thread-safe.
class emitter {
public:
  virtual ~emitter() = default;

  /// Language name used on the command line, e.g. "cpp".
  virtual std::string language() const = 0;

  /// Returns the generated source for `s`; `origin` names the schema file in
  /// the "generated from" banner.
  virtual std::string emit(const schema& s, const std::string& origin) const = 0;
};

/// Returns the emitter for `language`, or nullptr.
std::unique_ptr<emitter> make_emitter(const std::string& language);

/// Languages `make_emitter` knows.
std::vector<std::string> emitter_languages();

} // namespace mycelium::schema
