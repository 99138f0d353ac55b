#include "mycelium/config/toml_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace mycelium::config {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

template <class Load>
caf::expected<toml_value> guarded_parse(const std::string& name, errc code,
                                        Load load) {
  try {
    return load();
  } catch (const toml::syntax_error& e) {
    auto loc = e.location();
    return make_error(code, fmt::format("{}:{}:{}: TOML syntax error (fix the "
                                        "marked spot):\n{}",
                                        name, loc.line(), loc.column(), e.what()));
  } catch (const std::exception& e) {
    return make_error(code, name + ": " + e.what());
  }
}

/// Splits "250us" into 250 and "us"; false if there is no leading number.
bool split_unit(const std::string& s, double& x, std::string& unit) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'))
    ++i;
  if (i == 0)
    return false;
  try {
    x = std::stod(s.substr(0, i));
  } catch (...) {
    return false;
  }
  auto rest = s.substr(i);
  rest.erase(0, rest.find_first_not_of(' '));
  unit = rest;
  return std::isfinite(x);
}

/// Duration units, in nanoseconds.
const std::map<std::string, double>& duration_units() {
  static const std::map<std::string, double> units{
    {"ns", 1.0}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"min", 60e9}};
  return units;
}

} // namespace

std::optional<std::chrono::nanoseconds> parse_duration(const std::string& text) {
  double x = 0;
  std::string unit;
  if (!split_unit(text, x, unit) || duration_units().count(unit) == 0)
    return std::nullopt;
  auto ns = x * duration_units().at(unit);
  if (ns > 1e18)
    return std::nullopt;
  return std::chrono::nanoseconds{static_cast<int64_t>(ns)};
}

caf::expected<toml_value> parse_toml_file(const std::string& path, errc code) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return make_error(code, path + ": is a directory, not a TOML file");
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(code, path + ": cannot open the file (check the path "
                                   "and its permissions)");
  return guarded_parse(path, code, [&] {
    return toml::parse<toml::discard_comments, std::map, std::vector>(in, path);
  });
}

caf::expected<toml_value> parse_toml_string(const std::string& text,
                                            const std::string& name, errc code) {
  return guarded_parse(name, code, [&] {
    std::istringstream in{text};
    return toml::parse<toml::discard_comments, std::map, std::vector>(in, name);
  });
}

caf::expected<std::string> read_secret_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in)
    return make_error(errc::config_invalid,
                      "cannot read the secret file " + path
                        + " (check that it exists and is readable)");
  auto s = ss.str();
  if (!s.empty() && s.back() == '\n')
    s.pop_back();
  if (!s.empty() && s.back() == '\r')
    s.pop_back();
  if (s.empty())
    return make_error(errc::config_invalid,
                      "the secret file " + path + " is empty; put the shared secret in it");
  return s;
}

std::string closest(const std::vector<std::string>& known, const std::string& got) {
  std::string best;
  size_t best_d = 3; // suggest only within two edits
  for (auto& k : known) {
    auto d = edit_distance(got, k);
    if (d < best_d && d < got.size()) { // "x" is no typo of "y"
      best_d = d;
      best = k;
    }
  }
  return best;
}

std::string known_list(const std::vector<std::string>& known,
                       const std::string& got) {
  std::string out;
  for (auto& k : known) {
    if (!out.empty())
      out += ", ";
    out += k;
  }
  if (auto best = closest(known, got); !best.empty() && !got.empty())
    out += fmt::format("; did you mean '{}'?", best);
  return out;
}

const char* kind_name(const toml_value& v) noexcept {
  switch (v.type()) {
    case toml::value_t::boolean: return "a boolean";
    case toml::value_t::integer: return "an integer";
    case toml::value_t::floating: return "a number";
    case toml::value_t::string: return "a string";
    case toml::value_t::array: return "an array";
    case toml::value_t::table: return "a table";
    case toml::value_t::empty: return "empty";
    default: return "a date/time";
  }
}

std::string resolve_path(const std::string& file, const std::string& p) {
  std::filesystem::path fp{p};
  if (fp.is_absolute())
    return fp.lexically_normal().string();
  auto dir = std::filesystem::path{file}.parent_path();
  return (dir / fp).lexically_normal().string();
}

// -- problems -----------------------------------------------------------------

std::string toml_reader::where(const toml_value& v) const {
  auto loc = v.location();
  return fmt::format("{}:{}:{}", file_, loc.line(), loc.column());
}

void toml_reader::fail(const toml_value& v, const std::string& what) {
  auto loc = v.location();
  fail_at(static_cast<uint32_t>(loc.line()), static_cast<uint32_t>(loc.column()),
          what);
}

void toml_reader::fail_at(uint32_t line, uint32_t column, const std::string& what) {
  problems_.push_back(
    {line, column, fmt::format("{}:{}:{}: {}", file_, line, column, what)});
}

void toml_reader::fail_key(const toml_value& v, const std::string& context,
                           const std::string& key, const std::string& what) {
  fail(v, fmt::format("{} '{}': {}", context, key, what));
}

caf::error toml_reader::error() const {
  auto sorted = problems_;
  std::stable_sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) {
    return std::pair{a.line, a.column} < std::pair{b.line, b.column};
  });
  std::string all;
  for (auto& p : sorted) {
    if (!all.empty())
      all += '\n';
    all += p.text;
  }
  return make_error(code_, std::move(all));
}

// -- structure ------------------------------------------------------------------

const toml_value* toml_reader::find(const toml_value* t, const std::string& key) {
  if (t == nullptr || !t->is_table())
    return nullptr;
  auto& tab = t->as_table();
  auto i = tab.find(key);
  return i == tab.end() ? nullptr : &i->second;
}

void toml_reader::check_keys(const toml_value& t, const std::string& context,
                             const std::vector<std::string>& known) {
  if (!t.is_table())
    return;
  for (auto& [key, v] : t.as_table())
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(v, fmt::format("{} unknown key '{}' (known keys: {})", context, key,
                          known_list(known, key)));
}

bool toml_reader::expect_table(const toml_value& v, const std::string& context,
                               const std::string& key, const std::string& how) {
  if (v.is_table())
    return true;
  fail_key(v, context, key,
           fmt::format("must be a table, not {}{}", kind_name(v),
                       how.empty() ? "" : "; " + how));
  return false;
}

// -- typed values -----------------------------------------------------------------

std::optional<std::string> toml_reader::string(const toml_value& v,
                                               const std::string& context,
                                               const std::string& key) {
  if (!v.is_string()) {
    fail_key(v, context, key,
             fmt::format("must be a string in double quotes, not {}", kind_name(v)));
    return std::nullopt;
  }
  return v.as_string().str;
}

std::optional<std::string> toml_reader::nonempty_string(const toml_value& v,
                                                        const std::string& context,
                                                        const std::string& key) {
  auto s = string(v, context, key);
  if (s && s->empty()) {
    fail_key(v, context, key, "is empty; give a value");
    return std::nullopt;
  }
  return s;
}

std::optional<bool> toml_reader::boolean(const toml_value& v,
                                         const std::string& context,
                                         const std::string& key) {
  if (!v.is_boolean()) {
    fail_key(v, context, key,
             fmt::format("must be true or false, not {}", kind_name(v)));
    return std::nullopt;
  }
  return v.as_boolean();
}

std::optional<int64_t> toml_reader::integer(const toml_value& v,
                                            const std::string& context,
                                            const std::string& key, int64_t lo,
                                            int64_t hi) {
  if (!v.is_integer()) {
    fail_key(v, context, key,
             fmt::format("must be an integer (like {}), not {}", lo, kind_name(v)));
    return std::nullopt;
  }
  auto x = v.as_integer();
  if (x < lo || x > hi) {
    fail_key(v, context, key, fmt::format("{} is out of range; use {} to {}", x, lo, hi));
    return std::nullopt;
  }
  return x;
}

std::optional<double> toml_reader::number(const toml_value& v,
                                          const std::string& context,
                                          const std::string& key) {
  double x = 0;
  if (v.is_integer())
    x = static_cast<double>(v.as_integer());
  else if (v.is_floating())
    x = v.as_floating();
  else {
    fail_key(v, context, key, fmt::format("must be a number, not {}", kind_name(v)));
    return std::nullopt;
  }
  if (!std::isfinite(x)) {
    fail_key(v, context, key, "must be a finite number");
    return std::nullopt;
  }
  return x;
}

std::optional<std::string> toml_reader::choice(const toml_value& v,
                                               const std::string& context,
                                               const std::string& key,
                                               const std::vector<std::string>& allowed) {
  auto s = string(v, context, key);
  if (!s)
    return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
    fail_key(v, context, key,
             fmt::format("\"{}\" is not one of {}", *s, known_list(allowed, *s)));
    return std::nullopt;
  }
  return s;
}

std::optional<std::vector<std::string>>
toml_reader::string_array(const toml_value& v, const std::string& context,
                          const std::string& key) {
  if (!v.is_array()) {
    fail_key(v, context, key,
             fmt::format("must be a list of strings like [\"a\", \"b\"], not {}",
                         kind_name(v)));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool good = true;
  for (auto& e : v.as_array()) {
    if (!e.is_string()) {
      fail_key(e, context, key,
               fmt::format("element {} must be a string, not {}", out.size() + 1,
                           kind_name(e)));
      good = false;
      continue;
    }
    out.push_back(e.as_string().str);
  }
  if (!good)
    return std::nullopt;
  return out;
}

std::optional<double> toml_reader::with_unit(const toml_value& v,
                                             const std::string& context,
                                             const std::string& key, const quantity& q) {
  if (v.is_integer()) {
    if (v.as_integer() < 0) {
      fail_key(v, context, key, fmt::format("{} is negative; {}", v.as_integer(), q.how));
      return std::nullopt;
    }
    return static_cast<double>(v.as_integer()) * q.integer_scale;
  }
  if (!v.is_string()) {
    fail_key(v, context, key,
             fmt::format("must be a {}, not {}; {}", q.what, kind_name(v), q.how));
    return std::nullopt;
  }
  double x = 0;
  std::string unit;
  const auto& s = v.as_string().str;
  if (!split_unit(s, x, unit) || q.units.count(unit) == 0
      || (q.whole && x != std::floor(x))) {
    fail_key(v, context, key, fmt::format("\"{}\" is not a {}; {}", s, q.what, q.how));
    return std::nullopt;
  }
  auto scaled = x * q.units.at(unit);
  if (scaled > 1e18) {
    fail_key(v, context, key, fmt::format("\"{}\" is too {}", s, q.too));
    return std::nullopt;
  }
  return scaled;
}

std::optional<std::chrono::nanoseconds>
toml_reader::duration(const toml_value& v, const std::string& context,
                      const std::string& key, std::chrono::nanoseconds default_unit) {
  quantity q{"duration",
             "write a duration such as \"250us\", \"10ms\", \"2s\" or \"1min\"",
             "long", duration_units(), static_cast<double>(default_unit.count()), false};
  auto ns = with_unit(v, context, key, q);
  if (!ns)
    return std::nullopt;
  return std::chrono::nanoseconds{static_cast<int64_t>(*ns)};
}

std::optional<uint64_t> toml_reader::byte_size(const toml_value& v,
                                               const std::string& context,
                                               const std::string& key) {
  static const std::map<std::string, double> units{
    {"", 1.0}, {"B", 1.0}, {"KiB", 1024.0}, {"MiB", 1024.0 * 1024},
    {"GiB", 1024.0 * 1024 * 1024}};
  quantity q{"size", "write a size such as 65536, \"64KiB\", \"4MiB\" or \"1GiB\"",
             "large", units, 1.0, true};
  auto bytes = with_unit(v, context, key, q);
  if (!bytes)
    return std::nullopt;
  return static_cast<uint64_t>(*bytes);
}

} // namespace mycelium::config
