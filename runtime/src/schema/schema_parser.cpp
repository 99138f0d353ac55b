#include "mycelium/schema/schema_parser.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include "mycelium/config/toml_reader.hpp"
#include "mycelium/errc.hpp"
#include "mycelium/wire/frame_header.hpp"
#include "mycelium/wire/tlv.hpp"

namespace mycelium::schema {

namespace {

using tvalue = config::toml_value;

const std::map<std::string, scalar_kind>& scalar_names() {
  static const std::map<std::string, scalar_kind> names{
    {"u8", scalar_kind::u8},   {"u16", scalar_kind::u16},
    {"u32", scalar_kind::u32}, {"u64", scalar_kind::u64},
    {"i8", scalar_kind::i8},   {"i16", scalar_kind::i16},
    {"i32", scalar_kind::i32}, {"i64", scalar_kind::i64},
    {"f32", scalar_kind::f32}, {"f64", scalar_kind::f64},
    {"bool", scalar_kind::boolean},
  };
  return names;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_'))
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

/// Names the C++ emitter defines next to the user's types.
const std::set<std::string>& generated_names() {
  static const std::set<std::string> names{
    "detail", "schema_digest", "schema_package", "add_message_types",
    "descriptor", "encode_fields", "decode_fields", "inspect", "to_string",
    "is_valid"};
  return names;
}

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
}

/// Collects every problem instead of stopping at the first.
class parser {
public:
  explicit parser(std::string file)
    : file_(file), reader_(std::move(file), errc::schema_invalid) {
    result_.file = file_;
  }

  caf::expected<schema> run(const tvalue& root) {
    if (!root.is_table()) {
      fail(root, "the schema must be a TOML table");
      return finish();
    }
    for (auto& [key, v] : root.as_table()) {
      if (key == "package") {
        if (!v.is_string())
          fail(v, "'package' must be a string such as \"demo.trading\"");
        else
          parse_package(v);
      } else if (key == "enum") {
        if (!v.is_table()) {
          fail(v, "'enum' must be a table of [enum.<name>] sections");
          continue;
        }
        for (auto& [name, e] : v.as_table())
          parse_enum(name, e);
      } else if (key == "message") {
        if (!v.is_table()) {
          fail(v, "'message' must be a table of [message.<name>] sections");
          continue;
        }
        for (auto& [name, m] : v.as_table())
          parse_message(name, m);
      } else {
        fail(v, fmt::format("unknown top-level key '{}' (expected package, "
                            "[enum.<name>] or [message.<name>])", key));
      }
    }
    if (result_.package.empty() && reader_.ok())
      reader_.fail_at(1, 1, "missing 'package = \"...\"' (the C++ namespace "
                            "and part of the digest)");
    resolve();
    return finish();
  }

private:
  std::string where(const tvalue& v) const {
    return reader_.where(v);
  }

  source_pos pos(const tvalue& v) const {
    auto loc = v.location();
    return {file_, static_cast<uint32_t>(loc.line()),
            static_cast<uint32_t>(loc.column())};
  }

  void fail(const tvalue& v, const std::string& what) {
    reader_.fail(v, what);
  }

  void fail(const source_pos& p, const std::string& what) {
    reader_.fail_at(p.line, p.column, what);
  }

  caf::expected<schema> finish() {
    if (!reader_.ok())
      return reader_.error();
    std::sort(result_.enums.begin(), result_.enums.end(),
              [](auto& a, auto& b) { return a.name < b.name; });
    std::sort(result_.messages.begin(), result_.messages.end(),
              [](auto& a, auto& b) { return a.id < b.id; });
    return std::move(result_);
  }

  void parse_package(const tvalue& v) {
    auto pkg = v.as_string().str;
    std::stringstream ss{pkg};
    std::string part;
    bool ok = !pkg.empty();
    while (ok && std::getline(ss, part, '.'))
      ok = is_identifier(part) && !is_cpp_keyword(part);
    if (!ok || pkg.back() == '.')
      fail(v, fmt::format("package '{}' must be dot-separated identifiers that "
                          "are not reserved words, e.g. \"demo.trading\"", pkg));
    else
      result_.package = pkg;
  }

  void check_name(const tvalue& v, const std::string& what,
                  const std::string& name) {
    if (!is_identifier(name))
      fail(v, fmt::format("{} name '{}' is not an identifier (letters, digits, "
                          "'_', not starting with a digit)", what, name));
    else if ((what == std::string{"enum"} || what == std::string{"message"})
             && (is_cpp_keyword(name) || generated_names().count(name)))
      fail(v, fmt::format("{} name '{}' is a reserved word in generated code; "
                          "choose another name", what, name));
  }

  void parse_enum(const std::string& name, const tvalue& v) {
    check_name(v, "enum", name);
    if (names_.count(name)) {
      fail(v, fmt::format("name '{}' is already used by another enum or "
                          "message", name));
      return;
    }
    names_.insert(name);
    enum_def e;
    e.name = name;
    e.pos = pos(v);
    if (!v.is_table()) {
      fail(v, fmt::format("enum '{}' must be a table with 'values = {{ a = 1, "
                          "b = 2 }}'", name));
      return;
    }
    for (auto& [key, x] : v.as_table()) {
      if (key == "doc") {
        if (x.is_string())
          e.doc = x.as_string().str;
        else
          fail(x, "'doc' must be a string");
      } else if (key == "values") {
        if (!x.is_table() || x.as_table().empty()) {
          fail(x, fmt::format("enum '{}': 'values' must be a non-empty table "
                              "such as {{ buy = 1, sell = 2 }}", name));
          continue;
        }
        std::set<int64_t> seen;
        for (auto& [vname, val] : x.as_table()) {
          check_name(val, "enum value", vname);
          if (!val.is_integer() || val.as_integer() < 0
              || val.as_integer() > std::numeric_limits<uint32_t>::max()) {
            fail(val, fmt::format("enum '{}' value '{}' must be an integer in "
                                  "0..4294967295", name, vname));
            continue;
          }
          if (!seen.insert(val.as_integer()).second) {
            fail(val, fmt::format("enum '{}': value {} is used twice", name,
                                  val.as_integer()));
            continue;
          }
          e.values.emplace_back(vname, static_cast<uint32_t>(val.as_integer()));
        }
      } else {
        fail(x, fmt::format("enum '{}': unknown key '{}' (expected values, "
                            "doc)", name, key));
      }
    }
    if (e.values.empty()) {
      fail(v, fmt::format("enum '{}' has no values", name));
      return;
    }
    std::sort(e.values.begin(), e.values.end(),
              [](auto& a, auto& b) { return a.second < b.second; });
    result_.enums.push_back(std::move(e));
  }

  void parse_message(const std::string& name, const tvalue& v) {
    check_name(v, "message", name);
    if (names_.count(name)) {
      fail(v, fmt::format("name '{}' is already used by another enum or "
                          "message", name));
      return;
    }
    names_.insert(name);
    if (!v.is_table()) {
      fail(v, fmt::format("message '{}' must be a table", name));
      return;
    }
    message_def m;
    m.name = name;
    m.pos = pos(v);
    bool has_id = false;
    for (auto& [key, x] : v.as_table()) {
      if (key == "id") {
        if (!x.is_integer() || x.as_integer() < 1
            || x.as_integer() >= wire::first_local_type_id) {
          fail(x, fmt::format("message '{}': 'id' must be an integer in 1..{} "
                              "(ids from 0xFFFE0000 are reserved for the "
                              "runtime's own messages and control frames)",
                              name, wire::first_local_type_id - 1));
          continue;
        }
        m.id = static_cast<uint32_t>(x.as_integer());
        has_id = true;
        auto [it, fresh] = ids_.emplace(m.id, name);
        if (!fresh)
          fail(x, fmt::format("message '{}': type id {} is already used by "
                              "message '{}'", name, m.id, it->second));
      } else if (key == "doc") {
        if (x.is_string())
          m.doc = x.as_string().str;
        else
          fail(x, "'doc' must be a string");
      } else if (key == "fields") {
        if (!x.is_array()) {
          fail(x, fmt::format("message '{}': 'fields' must be an array of "
                              "inline tables", name));
          continue;
        }
        for (auto& f : x.as_array())
          parse_field(m, f);
      } else {
        fail(x, fmt::format("message '{}': unknown key '{}' (expected id, "
                            "fields, doc)", name, key));
      }
    }
    if (!has_id)
      fail(v, fmt::format("message '{}' has no 'id' (its numeric type id on "
                          "the wire)", name));
    std::sort(m.fields.begin(), m.fields.end(),
              [](auto& a, auto& b) { return a.id < b.id; });
    result_.messages.push_back(std::move(m));
  }

  bool parse_type(const tvalue& at, const std::string& owner,
                  const std::string& spelled, field_type& t) {
    auto s = trim(spelled);
    auto& scalars = scalar_names();
    auto elem = [&](const std::string& e, scalar_kind& out) {
      auto i = scalars.find(trim(e));
      if (i == scalars.end()) {
        fail(at, fmt::format("{}: element type '{}' must be a numeric scalar "
                             "or bool", owner, trim(e)));
        return false;
      }
      out = i->second;
      return true;
    };
    if (auto i = scalars.find(s); i != scalars.end()) {
      t.kind = type_kind::scalar;
      t.scalar = i->second;
      return true;
    }
    if (s == "string") {
      t.kind = type_kind::string;
      return true;
    }
    if (s == "bytes") {
      t.kind = type_kind::bytes;
      return true;
    }
    if (s.rfind("array<", 0) == 0 && s.back() == '>') {
      auto inner = s.substr(6, s.size() - 7);
      auto comma = inner.find(',');
      if (comma == std::string::npos) {
        fail(at, fmt::format("{}: '{}' must be written array<T,N>", owner, s));
        return false;
      }
      t.kind = type_kind::array;
      if (!elem(inner.substr(0, comma), t.scalar))
        return false;
      auto n = trim(inner.substr(comma + 1));
      if (n.empty() || n.size() > 6
          || !std::all_of(n.begin(), n.end(),
                         [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) || std::stoul(n) == 0
          || std::stoul(n) > 65536) {
        fail(at, fmt::format("{}: array length '{}' must be in 1..65536", owner, n));
        return false;
      }
      t.count = static_cast<uint32_t>(std::stoul(n));
      return true;
    }
    if (s.rfind("vector<", 0) == 0 && s.back() == '>') {
      t.kind = type_kind::vector;
      return elem(s.substr(7, s.size() - 8), t.scalar);
    }
    if (is_identifier(s)) {
      t.kind = type_kind::message; // enum or message, decided in resolve()
      t.ref = s;
      return true;
    }
    fail(at, fmt::format("{}: unknown type '{}' (expected u8..u64, i8..i64, "
                         "f32, f64, bool, string, bytes, array<T,N>, "
                         "vector<T>, or an enum or message name)", owner, s));
    return false;
  }

  void parse_field(message_def& m, const tvalue& f) {
    if (!f.is_table()) {
      fail(f, fmt::format("message '{}': each field must be an inline table "
                          "like {{ id = 1, name = \"px\", type = \"f64\" }}",
                          m.name));
      return;
    }
    field_def fd;
    fd.pos = pos(f);
    auto& tbl = f.as_table();
    auto get = [&](const char* key) -> const tvalue* {
      auto i = tbl.find(key);
      return i == tbl.end() ? nullptr : &i->second;
    };
    for (auto& [key, x] : tbl)
      if (key != "id" && key != "name" && key != "type" && key != "max"
          && key != "default" && key != "doc")
        fail(x, fmt::format("message '{}': unknown field key '{}' (expected "
                            "id, name, type, max, default, doc)", m.name, key));
    auto* name = get("name");
    if (!name || !name->is_string()) {
      fail(f, fmt::format("message '{}': field without a string 'name'", m.name));
      return;
    }
    fd.name = name->as_string().str;
    check_name(*name, "field", fd.name);
    auto owner = fmt::format("message '{}' field '{}'", m.name, fd.name);
    auto* id = get("id");
    if (!id || !id->is_integer() || id->as_integer() < 1
        || id->as_integer() > wire::max_field_id) {
      fail(id ? *id : f, fmt::format("{}: 'id' must be an integer in 1..{}",
                                     owner, wire::max_field_id));
      return;
    }
    fd.id = static_cast<uint16_t>(id->as_integer());
    for (auto& other : m.fields) {
      if (other.id == fd.id)
        fail(*id, fmt::format("{}: field id {} is already used by field '{}'",
                              owner, fd.id, other.name));
      if (other.name == fd.name)
        fail(*name, fmt::format("{}: field name used twice", owner));
    }
    auto* type = get("type");
    if (!type || !type->is_string()) {
      fail(f, fmt::format("{}: missing string 'type'", owner));
      return;
    }
    if (!parse_type(*type, owner, type->as_string().str, fd.type))
      return;
    auto* max = get("max");
    bool needs_max = fd.type.kind == type_kind::string
                     || fd.type.kind == type_kind::bytes
                     || fd.type.kind == type_kind::vector;
    if (needs_max) {
      if (!max || !max->is_integer() || max->as_integer() < 1
          || max->as_integer() > (1 << 30)) {
        fail(max ? *max : f,
             fmt::format("{}: {} needs 'max' (an integer in 1..{}) bounding "
                         "its size, so decoders can refuse oversized input",
                         owner, type->as_string().str, 1 << 30));
        return;
      }
      fd.type.max = static_cast<uint32_t>(max->as_integer());
    } else if (max) {
      fail(*max, fmt::format("{}: 'max' only applies to string, bytes and "
                             "vector fields", owner));
    }
    if (auto* d = get("default"))
      pending_defaults_.push_back({m.name, fd.id, d});
    if (auto* d = get("doc")) {
      if (d->is_string())
        fd.doc = d->as_string().str;
      else
        fail(*d, fmt::format("{}: 'doc' must be a string", owner));
    }
    m.fields.push_back(std::move(fd));
  }

  std::string canonical_default(const field_def& f, const tvalue& d,
                                const std::string& owner) {
    auto& t = f.type;
    auto bad = [&](const std::string& expect) {
      fail(d, fmt::format("{}: default must be {}", owner, expect));
      return std::string{};
    };
    if (t.kind == type_kind::scalar) {
      if (t.scalar == scalar_kind::boolean)
        return d.is_boolean() ? (d.as_boolean() ? "true" : "false")
                              : bad("true or false");
      if (t.scalar == scalar_kind::f32 || t.scalar == scalar_kind::f64) {
        double x;
        if (d.is_floating())
          x = d.as_floating();
        else if (d.is_integer())
          x = static_cast<double>(d.as_integer());
        else
          return bad("a number");
        if (!std::isfinite(x))
          return bad("a finite number");
        if (t.scalar == scalar_kind::f32)
          return fmt::format("{}", static_cast<float>(x));
        return fmt::format("{}", x);
      }
      if (!d.is_integer())
        return bad("an integer");
      auto x = d.as_integer();
      int64_t lo = 0;
      uint64_t hi = 0;
      switch (t.scalar) {
        case scalar_kind::u8: hi = 255; break;
        case scalar_kind::u16: hi = 65535; break;
        case scalar_kind::u32: hi = 4294967295u; break;
        case scalar_kind::u64: hi = std::numeric_limits<int64_t>::max(); break;
        case scalar_kind::i8: lo = -128; hi = 127; break;
        case scalar_kind::i16: lo = -32768; hi = 32767; break;
        case scalar_kind::i32: lo = std::numeric_limits<int32_t>::min();
                               hi = std::numeric_limits<int32_t>::max(); break;
        default: lo = std::numeric_limits<int64_t>::min();
                 hi = std::numeric_limits<int64_t>::max();
      }
      if (x < lo || (x > 0 && static_cast<uint64_t>(x) > hi))
        return bad(fmt::format("within the range of {}", to_string(t.scalar)));
      return std::to_string(x);
    }
    if (t.kind == type_kind::string) {
      if (!d.is_string())
        return bad("a string");
      auto s = d.as_string().str;
      if (s.size() > t.max)
        return bad(fmt::format("at most {} bytes long", t.max));
      std::string q = "\"";
      for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
          q += '\\';
          q += c;
        } else if (u < 0x20 || u == 0x7f) {
          q += fmt::format("\\{:03o}", u); // fixed-width octal escape
        } else {
          q += c;
        }
      }
      return q + "\"";
    }
    if (t.kind == type_kind::enumeration) {
      if (!d.is_string())
        return bad("the name of a value of enum " + t.ref);
      auto* e = result_.find_enum(t.ref);
      auto s = d.as_string().str;
      if (e && std::none_of(e->values.begin(), e->values.end(),
                            [&](auto& kv) { return kv.first == s; }))
        return bad("one of the values of enum " + t.ref);
      return s;
    }
    return bad("absent: only scalars, strings and enums take a default");
  }

  void resolve() {
    for (auto& m : result_.messages)
      for (auto& f : m.fields)
        if (f.type.kind == type_kind::message) {
          if (result_.find_enum(f.type.ref)) {
            f.type.kind = type_kind::enumeration;
          } else if (!names_.count(f.type.ref)) {
            fail(f.pos, fmt::format("message '{}' field '{}': unknown type '{}' "
                                    "(no enum or message of that name)",
                                    m.name, f.name, f.type.ref));
          } else if (f.type.ref == m.name) {
            fail(f.pos, fmt::format("message '{}' field '{}': a message cannot "
                                    "contain itself", m.name, f.name));
          }
        }
    for (auto& pd : pending_defaults_) {
      auto& m = *std::find_if(result_.messages.begin(), result_.messages.end(),
                              [&](auto& x) { return x.name == pd.message; });
      auto& f = *std::find_if(m.fields.begin(), m.fields.end(),
                              [&](auto& x) { return x.id == pd.field; });
      f.default_value = canonical_default(
        f, *pd.value, fmt::format("message '{}' field '{}'", m.name, f.name));
    }
    // Nested-message cycles (a -> b -> a) would make types of infinite size.
    std::map<std::string, int> state; // 1 = visiting, 2 = done
    std::function<bool(const message_def&)> visit = [&](const message_def& m) {
      auto& st = state[m.name];
      if (st == 2)
        return true;
      if (st == 1) {
        fail(m.pos, fmt::format("message '{}' is part of a nesting cycle; "
                                "nested messages must form a tree", m.name));
        return false;
      }
      st = 1;
      for (auto& f : m.fields)
        if (f.type.kind == type_kind::message && f.type.ref != m.name)
          if (auto* n = result_.find_message(f.type.ref); n && !visit(*n))
            return false;
      state[m.name] = 2;
      return true;
    };
    for (auto& m : result_.messages)
      if (!visit(m))
        break;
  }

  struct pending_default {
    std::string message;
    uint16_t field;
    const tvalue* value;
  };

  std::string file_;
  config::toml_reader reader_;
  schema result_;
  std::set<std::string> names_;
  std::map<uint32_t, std::string> ids_;
  std::vector<pending_default> pending_defaults_;
};

caf::expected<schema> parse_root(const std::string& name,
                                 caf::expected<tvalue> root) {
  if (!root)
    return std::move(root.error());
  return parser{name}.run(*root);
}

} // namespace

caf::expected<schema> parse_file(const std::string& path) {
  return parse_root(path, config::parse_toml_file(path, errc::schema_invalid));
}

caf::expected<schema> parse_string(const std::string& text,
                                   const std::string& name) {
  return parse_root(name, config::parse_toml_string(text, name, errc::schema_invalid));
}

} // namespace mycelium::schema
