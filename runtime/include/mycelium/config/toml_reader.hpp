#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <toml.hpp>

#include "mycelium/errc.hpp"

namespace mycelium::config {

/// A parsed TOML value, as every Mycelium file reader sees it (comments
/// dropped, tables ordered by key; each value remembers its file position).
using toml_value = toml::basic_value<toml::discard_comments, std::map, std::vector>;

/// Parses the TOML file at `path`. A file that cannot be read or is not
/// valid TOML fails with `code`, and the text names "path:line:column" and
/// what to fix. Thread-safe.
caf::expected<toml_value> parse_toml_file(const std::string& path,
                                          errc code = errc::config_invalid);

/// Same for `text`; `name` stands for the file in messages.
caf::expected<toml_value> parse_toml_string(const std::string& text,
                                            const std::string& name,
                                            errc code = errc::config_invalid);

/// "a, b, c", plus "; did you mean 'b'?" when `got` is within two edits of
/// one of `known`.
std::string known_list(const std::vector<std::string>& known,
                       const std::string& got);

/// The closest of `known` to `got` within two edits, or "".
std::string closest(const std::vector<std::string>& known, const std::string& got);

/// "a string", "an integer", ...: what a value is, for messages.
const char* kind_name(const toml_value& v) noexcept;

/// Resolves `p` against the directory of `file` unless it is absolute.
std::string resolve_path(const std::string& file, const std::string& p);

/// Parses a duration with a unit ("250us", "10ms", "2s", "1min"), as a
/// command-line option gives it; nullopt when it is not one. Thread-safe.
std::optional<std::chrono::nanoseconds> parse_duration(const std::string& text);

/// Reads a shared secret from `path`: the file's bytes without one trailing
/// newline (an editor's). Fails with `config_invalid` naming the file when
/// it cannot be read or is empty. Thread-safe.
caf::expected<std::string> read_secret_file(const std::string& path);

/// Reads one TOML document and collects every problem instead of stopping
/// at the first; each problem is "file:line:column: what to fix". File
/// readers (schema, backtest, topology) build their own checks on it.
///
/// Thread-safety: one reader belongs to one thread.
class toml_reader {
public:
  explicit toml_reader(std::string file, errc code = errc::config_invalid)
    : file_(std::move(file)), code_(code) {
  }

  const std::string& file() const noexcept { return file_; }

  // -- problems ---------------------------------------------------------------

  /// "file:line:column" of `v`.
  std::string where(const toml_value& v) const;

  /// Records a problem at `v`.
  void fail(const toml_value& v, const std::string& what);

  /// Records a problem at an explicit position (1-based).
  void fail_at(uint32_t line, uint32_t column, const std::string& what);

  /// Records "<context> '<key>': <what>" at `v`; `context` is e.g. "[grid]
  /// field" or "node 'md' key".
  void fail_key(const toml_value& v, const std::string& context,
                const std::string& key, const std::string& what);

  bool ok() const noexcept { return problems_.empty(); }

  /// Every problem, in file order, one per line, as one error of the
  /// reader's code.
  caf::error error() const;

  // -- structure --------------------------------------------------------------

  /// `key` in table `t`, or nullptr (also when `t` is null or no table).
  static const toml_value* find(const toml_value* t, const std::string& key);

  /// Fails every key of table `t` that is not in `known`, with "did you
  /// mean". `context` names the table in the message, e.g. "[data]".
  void check_keys(const toml_value& t, const std::string& context,
                  const std::vector<std::string>& known);

  /// Fails unless `v` is a table; `how` says how to write one.
  bool expect_table(const toml_value& v, const std::string& context,
                    const std::string& key, const std::string& how = {});

  // -- typed values (each fails with the context and returns nullopt) -----------

  std::optional<std::string> string(const toml_value& v, const std::string& context,
                                    const std::string& key);

  /// A string that is not empty.
  std::optional<std::string> nonempty_string(const toml_value& v,
                                             const std::string& context,
                                             const std::string& key);

  std::optional<bool> boolean(const toml_value& v, const std::string& context,
                              const std::string& key);

  std::optional<int64_t> integer(const toml_value& v, const std::string& context,
                                 const std::string& key, int64_t lo, int64_t hi);

  /// An integer or float that is finite.
  std::optional<double> number(const toml_value& v, const std::string& context,
                               const std::string& key);

  /// A string out of `allowed`, with "did you mean" otherwise.
  std::optional<std::string> choice(const toml_value& v, const std::string& context,
                                    const std::string& key,
                                    const std::vector<std::string>& allowed);

  /// An array whose elements are all strings.
  std::optional<std::vector<std::string>>
  string_array(const toml_value& v, const std::string& context,
               const std::string& key);

  /// A duration written as a string with a unit ("250us", "10ms", "2s",
  /// "1min") or as an integer count of `default_unit`s; nullopt (and a
  /// problem) when negative or malformed.
  std::optional<std::chrono::nanoseconds>
  duration(const toml_value& v, const std::string& context, const std::string& key,
           std::chrono::nanoseconds default_unit = std::chrono::milliseconds{1});

  /// A byte size written as an integer or a string with a unit ("4MiB",
  /// "64KiB", "1GiB").
  std::optional<uint64_t> byte_size(const toml_value& v, const std::string& context,
                                    const std::string& key);

private:
  /// A number with a unit: what it is called, how to write one, the units
  /// and their scale to the base unit, the scale of a bare integer.
  struct quantity {
    const char* what;
    const char* how;
    const char* too; ///< "long", "large"
    const std::map<std::string, double>& units;
    double integer_scale;
    bool whole; ///< the number before the unit must be whole
  };

  /// `v` in base units of `q`, or nullopt (and a problem).
  std::optional<double> with_unit(const toml_value& v, const std::string& context,
                                  const std::string& key, const quantity& q);

  struct problem {
    uint32_t line;
    uint32_t column;
    std::string text;
  };
  std::string file_;
  errc code_;
  std::vector<problem> problems_;
};

} // namespace mycelium::config
