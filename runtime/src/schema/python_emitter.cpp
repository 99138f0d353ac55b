// The Python back-end of mycelium-codegen: one module of message classes per
// schema (`--lang python`) and its type stub (`--lang pyi`). The classes
// describe their fields in a table; encoding and strict decoding live in the
// pure-Python runtime `mycelium.codec` (bindings/python/mycelium/codec.py),
// so that the generated text stays small and every rule of
// docs/wire-protocol.md is implemented once. See docs/python.md.

#include "mycelium/schema/emitter.hpp"

#include <cstdlib>
#include <functional>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "mycelium/schema/digest.hpp"

namespace mycelium::schema {

namespace {

/// Python keywords (hard and soft): such names cannot be attributes,
/// parameters or classes as written.
bool is_python_keyword(const std::string& s) {
  static const std::set<std::string> words{
    "False",  "None",   "True",    "and",      "as",       "assert", "async",
    "await",  "break",  "class",   "continue", "def",      "del",    "elif",
    "else",   "except", "finally", "for",      "from",     "global", "if",
    "import", "in",     "is",      "lambda",   "nonlocal", "not",    "or",
    "pass",   "raise",  "return",  "try",      "while",    "with",   "yield",
    "match",  "case",   "type",    "_"};
  return words.count(s) != 0;
}

/// Names every generated message class (or its base, mycelium.codec.Message)
/// defines itself, the internals of that base, `self` and the module's
/// import aliases; a field of that name gets a trailing underscore.
bool is_message_member(const std::string& s) {
  static const std::set<std::string> members{
    "type_id", "type_name", "digest", "encode", "decode", "encode_frame",
    "fields", "schema", "copy", "self", "_b", "_t", "_mc",
    "_fields", "_by_id", "_tags", "_set_fields", "_encode_into", "_decode_into"};
  return members.count(s) != 0;
}

/// Names the generated module defines at its top level.
bool is_module_name(const std::string& s) {
  static const std::set<std::string> names{"SCHEMA", "SCHEMA_DIGEST", "SCHEMA_PACKAGE",
                                           "MESSAGES"};
  return names.count(s) != 0 || s.rfind("_T_", 0) == 0 || s.rfind("_mc", 0) == 0
         || s.rfind("_b", 0) == 0 || s.rfind("_t", 0) == 0;
}

/// Python name of a field: keywords and `is_message_member` names get a
/// trailing underscore; a leading double underscore
/// (which Python would mangle inside the class) or `_T_` (the prefix of the
/// module's type aliases) gets an `m` in front. `taken` holds the names already used in
/// the same message, so that an escaped name never collides with a real one.
std::string py_field(const std::string& s, std::set<std::string>& taken) {
  auto n = s;
  if (n.rfind("__", 0) == 0 || n.rfind("_T_", 0) == 0)
    n = "m" + n;
  if (is_python_keyword(n) || is_message_member(n))
    n += "_";
  while (taken.count(n) != 0)
    n += "_";
  taken.insert(n);
  return n;
}

/// Python name of an enum or message class.
std::string py_class(const std::string& s) {
  return is_python_keyword(s) || is_module_name(s) ? s + "_" : s;
}

/// Python name of an enum value (enum.Enum reserves a few).
std::string py_enum_value(const std::string& s) {
  static const std::set<std::string> reserved{"name", "value", "mro"};
  if (s.rfind("_", 0) == 0)
    return "m" + s;
  return is_python_keyword(s) || reserved.count(s) != 0 ? s + "_" : s;
}

const char* py_scalar_const(scalar_kind k) {
  switch (k) {
    case scalar_kind::u8: return "_mc.U8";
    case scalar_kind::u16: return "_mc.U16";
    case scalar_kind::u32: return "_mc.U32";
    case scalar_kind::u64: return "_mc.U64";
    case scalar_kind::i8: return "_mc.I8";
    case scalar_kind::i16: return "_mc.I16";
    case scalar_kind::i32: return "_mc.I32";
    case scalar_kind::i64: return "_mc.I64";
    case scalar_kind::f32: return "_mc.F32";
    case scalar_kind::f64: return "_mc.F64";
    case scalar_kind::boolean: return "_mc.BOOL";
  }
  return "?";
}

/// The Python type of a scalar, qualified by `builtins` so that a field
/// named `int` cannot shadow it in the class body of a stub.
const char* py_scalar_type(scalar_kind k) {
  switch (k) {
    case scalar_kind::f32:
    case scalar_kind::f64: return "_b.float";
    case scalar_kind::boolean: return "_b.bool";
    default: return "_b.int";
  }
}

std::string alias(const std::string& schema_name) {
  return "_T_" + py_class(schema_name);
}

std::string py_type(const field_type& t) {
  switch (t.kind) {
    case type_kind::scalar: return py_scalar_type(t.scalar);
    case type_kind::string: return "_b.str";
    case type_kind::bytes: return "_b.bytes";
    case type_kind::enumeration:
    case type_kind::message: return alias(t.ref);
    case type_kind::array:
    case type_kind::vector: return fmt::format("_b.list[{}]", py_scalar_type(t.scalar));
  }
  return "?";
}

/// A canonical float default as a Python float literal; f32 defaults are
/// widened from their f32 value, which is what a decoder produces.
std::string py_float(const std::string& text, bool is_f32) {
  double x = std::strtod(text.c_str(), nullptr);
  if (is_f32)
    x = static_cast<double>(static_cast<float>(x));
  auto s = fmt::format("{}", x);
  if (s.find_first_of(".eE") == std::string::npos)
    s += ".0";
  return s;
}

/// The default as a Python expression; `mutable_default` is set for types
/// whose default must be built per instance (bytes are immutable and need
/// no factory; lists and nested messages do).
std::string py_default(const schema& s, const field_def& f, bool& mutable_default) {
  mutable_default = false;
  auto& t = f.type;
  auto d = effective_default(s, f);
  switch (t.kind) {
    case type_kind::scalar:
      if (t.scalar == scalar_kind::boolean)
        return d == "true" ? "True" : "False";
      if (t.scalar == scalar_kind::f32 || t.scalar == scalar_kind::f64)
        return py_float(d, t.scalar == scalar_kind::f32);
      return d;
    case type_kind::string:
      // The canonical text (double quotes, \" \\ and three-digit octal
      // escapes, UTF-8 as is) is a valid Python string literal.
      return d;
    case type_kind::bytes: return "b\"\"";
    case type_kind::enumeration: return alias(t.ref) + "." + py_enum_value(d);
    case type_kind::array:
      mutable_default = true;
      return fmt::format("[{}] * {}",
                         t.scalar == scalar_kind::boolean ? "False"
                         : t.scalar == scalar_kind::f32 || t.scalar == scalar_kind::f64
                           ? "0.0"
                           : "0",
                         t.count);
    case type_kind::vector: mutable_default = true; return "[]";
    case type_kind::message: mutable_default = true; return alias(t.ref) + "()";
  }
  return "None";
}

std::string field_kind(const field_type& t) {
  switch (t.kind) {
    case type_kind::scalar: return py_scalar_const(t.scalar);
    case type_kind::string: return fmt::format("_mc.String({})", t.max);
    case type_kind::bytes: return fmt::format("_mc.Bytes({})", t.max);
    case type_kind::enumeration: return fmt::format("_mc.EnumKind({})", alias(t.ref));
    case type_kind::message: return fmt::format("_mc.Nested({})", alias(t.ref));
    case type_kind::array:
      return fmt::format("_mc.Array({}, {})", py_scalar_const(t.scalar), t.count);
    case type_kind::vector:
      return fmt::format("_mc.Vector({}, {})", py_scalar_const(t.scalar), t.max);
  }
  return "?";
}

/// A Python string literal for arbitrary text (names, docs).
std::string py_str(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      q += '\\';
      q += c;
    } else if (u < 0x20 || u == 0x7f) {
      q += fmt::format("\\{:03o}", u);
    } else {
      q += c;
    }
  }
  return q + "\"";
}

/// A docstring (or nothing) at `indent`.
void docstring(std::ostream& o, const std::string& doc, const char* indent) {
  if (!doc.empty())
    o << indent << py_str(doc) << "\n";
}

/// Messages with every nested type before its user.
std::vector<const message_def*> dependency_order(const schema& s) {
  std::vector<const message_def*> out;
  std::set<std::string> done;
  std::function<void(const message_def&)> visit = [&](const message_def& m) {
    if (!done.insert(m.name).second)
      return;
    for (auto& f : m.fields)
      if (f.type.kind == type_kind::message)
        if (auto* n = s.find_message(f.type.ref))
          visit(*n);
    out.push_back(&m);
  };
  for (auto& m : s.messages)
    visit(m);
  return out;
}

/// One field as the emitters see it.
struct py_field_info {
  const field_def* def;
  std::string attr;
  std::string type;
  std::string default_expr;
  bool mutable_default;
};

std::vector<py_field_info> fields_of(const schema& s, const message_def& m) {
  std::vector<py_field_info> out;
  std::set<std::string> taken;
  for (auto& f : m.fields) {
    py_field_info x{&f, py_field(f.name, taken), py_type(f.type), "", false};
    x.default_expr = py_default(s, f, x.mutable_default);
    out.push_back(std::move(x));
  }
  return out;
}

std::string hex(const digest256& d) {
  return to_hex(d);
}

/// The parts both back-ends share: banner and imports.
void banner(std::ostream& o, const schema& s, const std::string& origin) {
  o << "# Generated by mycelium-codegen from " << origin << ". Do not edit.\n"
    << "# Package " << s.package << ", schema digest " << hex(schema_digest(s)) << "\n"
    << "# Runtime: mycelium.codec (bindings/python/mycelium); see docs/python.md.\n";
}

/// `--lang python`: the module.
class python_emitter : public emitter {
public:
  std::string language() const override { return "python"; }

  std::string emit(const schema& s, const std::string& origin) const override {
    std::ostringstream o;
    banner(o, s, origin);
    o << "\"\"\"Message classes of schema package " << s.package << ".\"\"\"\n\n"
      << "import builtins as _b\n"
      << "import typing as _t\n\n"
      << "from mycelium import codec as _mc\n\n"
      << "SCHEMA_PACKAGE = " << py_str(s.package) << "\n"
      << "#: SHA-256 of the schema's canonical form (docs/schema.md section 7).\n"
      << "SCHEMA_DIGEST = _b.bytes.fromhex(\"" << hex(schema_digest(s)) << "\")\n\n";
    for (auto& e : s.enums) {
      o << "\nclass " << py_class(e.name) << "(_mc.Enum):\n";
      docstring(o, e.doc, "    ");
      for (auto& [name, value] : e.values)
        o << "    " << py_enum_value(name) << " = " << value << "\n";
      o << "\n\n" << alias(e.name) << " = " << py_class(e.name) << "\n\n";
    }
    for (auto* m : dependency_order(s))
      emit_message(o, s, *m);
    o << "\n#: Every message class, by type id.\n"
      << "MESSAGES: _t.Dict[_b.int, _t.Type[_mc.Message]] = {\n";
    for (auto& m : s.messages)
      o << "    " << m.id << ": " << py_class(m.name) << ",\n";
    o << "}\n\n"
      << "#: The type-erased view links use (hello, decoding by type id).\n"
      << "SCHEMA = _mc.Schema(SCHEMA_PACKAGE, SCHEMA_DIGEST, MESSAGES)\n";
    return o.str();
  }

private:
  static void emit_message(std::ostream& o, const schema& s, const message_def& m) {
    auto cls = py_class(m.name);
    auto fs = fields_of(s, m);
    o << "\nclass " << cls << "(_mc.Message):\n";
    docstring(o, m.doc, "    ");
    o << "    __slots__ = (";
    for (auto& f : fs)
      o << py_str(f.attr) << ", ";
    o << ")\n"
      << "    type_id: _t.ClassVar[_b.int] = " << m.id << "\n"
      << "    type_name: _t.ClassVar[_b.str] = " << py_str(m.name) << "\n"
      << "    digest: _t.ClassVar[_b.bytes] = _b.bytes.fromhex(\""
      << hex(message_digest(s, m)) << "\")\n\n";
    for (auto& f : fs)
      o << "    " << f.attr << ": " << f.type << "\n";
    o << "\n    def __init__(self";
    if (!fs.empty())
      o << ", *";
    for (auto& f : fs)
      o << ", " << f.attr << ": "
        << (f.mutable_default ? "_t.Optional[" + f.type + "] = None"
                              : f.type + " = " + f.default_expr);
    o << ") -> None:\n";
    if (fs.empty())
      o << "        pass\n";
    for (auto& f : fs) {
      if (f.mutable_default)
        o << "        self." << f.attr << " = " << f.default_expr << " if " << f.attr
          << " is None else " << f.attr << "\n";
      else
        o << "        self." << f.attr << " = " << f.attr << "\n";
    }
    o << "\n\n" << alias(m.name) << " = " << cls << "\n"
      << cls << "._set_fields((\n";
    for (auto& f : fs)
      o << "    _mc.Field(" << f.def->id << ", " << py_str(f.attr) << ", "
        << py_str(f.def->name) << ", " << field_kind(f.def->type) << "),\n";
    o << "))\n\n";
  }
};

/// `--lang pyi`: the type stub that `mypy --strict` reads instead of the
/// module.
class pyi_emitter : public emitter {
public:
  std::string language() const override { return "pyi"; }

  std::string emit(const schema& s, const std::string& origin) const override {
    std::ostringstream o;
    banner(o, s, origin);
    o << "import builtins as _b\n"
      << "import typing as _t\n\n"
      << "from mycelium import codec as _mc\n\n"
      << "SCHEMA_PACKAGE: _b.str\n"
      << "SCHEMA_DIGEST: _b.bytes\n"
      << "MESSAGES: _t.Dict[_b.int, _t.Type[_mc.Message]]\n"
      << "SCHEMA: _mc.Schema\n";
    for (auto& e : s.enums) {
      o << "\nclass " << py_class(e.name) << "(_mc.Enum):\n";
      for (auto& [name, value] : e.values)
        o << "    " << py_enum_value(name) << " = " << value << "\n";
      o << "\n" << alias(e.name) << ": _t.TypeAlias = " << py_class(e.name) << "\n";
    }
    for (auto* m : dependency_order(s)) {
      auto fs = fields_of(s, *m);
      o << "\nclass " << py_class(m->name) << "(_mc.Message):\n"
        << "    type_id: _t.ClassVar[_b.int]\n"
        << "    type_name: _t.ClassVar[_b.str]\n"
        << "    digest: _t.ClassVar[_b.bytes]\n";
      for (auto& f : fs)
        o << "    " << f.attr << ": " << f.type << "\n";
      o << "    def __init__(self";
      if (!fs.empty())
        o << ", *";
      for (auto& f : fs)
        o << ", " << f.attr << ": "
          << (f.mutable_default ? "_t.Optional[" + f.type + "] = ..." : f.type + " = ...");
      o << ") -> None: ...\n"
        << "\n" << alias(m->name) << ": _t.TypeAlias = " << py_class(m->name) << "\n";
    }
    return o.str();
  }
};

} // namespace

/// The Python back-ends, for `make_emitter` (cpp_emitter.cpp): "python" (the
/// module) and "pyi" (its stub); nullptr for other languages.
std::unique_ptr<emitter> make_python_emitter(const std::string& language) {
  if (language == "python")
    return std::make_unique<python_emitter>();
  if (language == "pyi")
    return std::make_unique<pyi_emitter>();
  return nullptr;
}

} // namespace mycelium::schema
