#include "ocaml_emitter.hpp"

#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "mycelium/schema/digest.hpp"

// The OCaml back-end of mycelium-codegen (docs/ocaml.md): one module per
// schema, a submodule per enum and per message, the TLV codec on top of the
// `Mycelium.Tlv` runtime of bindings/ocaml. Decoders check exactly what the
// C++ decoder checks, in the same order (docs/wire-protocol.md section 4).

namespace mycelium::schema {

namespace {

bool is_ocaml_keyword(const std::string& s) {
  static const std::set<std::string> words{
    "and", "as", "assert", "asr", "begin", "class", "constraint", "do", "done",
    "downto", "else", "end", "exception", "external", "false", "for", "fun",
    "function", "functor", "if", "in", "include", "inherit", "initializer",
    "land", "lazy", "let", "lor", "lsl", "lsr", "lxor", "match", "method",
    "mod", "module", "mutable", "new", "nonrec", "object", "of", "open", "or",
    "private", "rec", "sig", "struct", "then", "to", "true", "try", "type",
    "val", "virtual", "when", "while", "with"};
  return words.count(s) != 0;
}

/// Schema identifiers are `[A-Za-z_][A-Za-z0-9_]*`. OCaml values and record
/// labels must start with a lower-case letter or `_`, modules and
/// constructors with an upper-case letter.
std::string lower_ident(const std::string& s) {
  std::string out = s;
  if (!out.empty() && out[0] >= 'A' && out[0] <= 'Z')
    out[0] = static_cast<char>(out[0] - 'A' + 'a');
  if (is_ocaml_keyword(out))
    out += "_";
  return out;
}

std::string upper_ident(const std::string& s) {
  if (s.empty())
    return "X_";
  if (s[0] == '_')
    return "U" + s;
  std::string out = s;
  if (out[0] >= 'a' && out[0] <= 'z')
    out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

/// Assigns each schema name an OCaml name made by `make`, appending `_` until
/// it is unique among the others (schema names differing only in the case of
/// their first letter would otherwise collide).
std::map<std::string, std::string> unique_names(
  const std::vector<std::string>& names,
  const std::function<std::string(const std::string&)>& make,
  std::set<std::string> taken = {}) {
  std::map<std::string, std::string> out;
  for (auto& n : names) {
    auto o = make(n);
    while (taken.count(o))
      o += "_";
    taken.insert(o);
    out[n] = o;
  }
  return out;
}

/// A string as an OCaml literal; every byte outside printable ASCII escaped.
std::string ocaml_string(const std::string& bytes) {
  std::string out = "\"";
  for (unsigned char c : bytes) {
    if (c == '"' || c == '\\')
      out += std::string{"\\"} + static_cast<char>(c);
    else if (c >= 0x20 && c < 0x7F)
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out + "\"";
}

/// Decodes a canonical string default (`"..."` with `\"`, `\\` and
/// three-digit octal escapes, schema.md section 4) back to its bytes.
std::string unquote_canonical(const std::string& text) {
  std::string out;
  if (text.size() < 2)
    return out;
  for (size_t i = 1; i + 1 < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 2 < text.size()) {
      char n = text[i + 1];
      if (n >= '0' && n <= '7' && i + 3 < text.size()) {
        out += static_cast<char>(std::strtol(text.substr(i + 1, 3).c_str(), nullptr, 8));
        i += 3;
      } else {
        out += n;
        i += 1;
      }
    } else {
      out += c;
    }
  }
  return out;
}

std::string digest_literal(const digest256& d) {
  return ocaml_string(std::string(d.begin(), d.end()));
}

bool is_int64(scalar_kind k) {
  return k == scalar_kind::u64 || k == scalar_kind::i64;
}

bool is_float(scalar_kind k) {
  return k == scalar_kind::f32 || k == scalar_kind::f64;
}

const char* ocaml_scalar(scalar_kind k) {
  if (k == scalar_kind::boolean)
    return "bool";
  if (is_int64(k))
    return "int64";
  if (is_float(k))
    return "float";
  return "int";
}

/// Runtime function suffix of a scalar: `Rt__.r_u8`, `Rt__.w_u8`, `Rt__.get_u8`.
const char* scalar_suffix(scalar_kind k) {
  return k == scalar_kind::boolean ? "bool" : to_string(k);
}

/// A float canonical text as an OCaml float literal.
std::string float_literal(const std::string& text) {
  auto t = text;
  if (t.find_first_of(".eE") == std::string::npos)
    t += ".";
  return "(" + t + ")";
}

/// One generation run: the OCaml names chosen for the schema's types.
class generator {
public:
  std::string run(const schema& s, const std::string& origin) {
    std::ostringstream o;
    std::vector<std::string> type_names;
    for (auto& e : s.enums)
      type_names.push_back(e.name);
    for (auto& m : s.messages)
      type_names.push_back(m.name);
    // Rt__ is the runtime alias; `Any` is not taken by a schema type.
    modules_ = unique_names(type_names, upper_ident, {"Rt__"});
    // The view submodules (`M.View`, the top-level `View`) take a name no
    // schema type has, so existing names never change.
    std::set<std::string> module_names;
    for (auto& [schema_name, ocaml_name] : modules_)
      module_names.insert(ocaml_name);
    view_module_ = "View";
    while (module_names.count(view_module_))
      view_module_ += "_";
    auto sd = schema_digest(s);
    o << "(* Generated by mycelium-codegen from " << origin << ". Do not edit. *)\n"
      << "(* Package " << s.package << ", schema digest " << to_hex(sd) << " *)\n"
      << "(* Integers: u8..u32 and i8..i32 are int, u64 and i64 are int64 (u64\n"
      << "   as the unsigned bit pattern); f32 and f64 are float; bytes are\n"
      << "   string, or Mycelium.View.t in the view decoders (M." << view_module_ << ");\n"
      << "   arrays and vectors are OCaml arrays. See docs/ocaml.md. *)\n\n"
      << "[@@@warning \"-27-32-33-35-37-39-69\"]\n\n"
      << "module Rt__ = Mycelium.Tlv\n\n"
      << "(** The schema's package name. *)\nlet package = " << ocaml_string(s.package) << "\n\n"
      << "(** SHA-256 of the canonical form of the whole schema (32 bytes). *)\n"
      << "let schema_digest = " << digest_literal(sd) << "\n\n";
    for (auto& e : s.enums)
      emit_enum(o, e);
    for (auto* m : dependency_order(s))
      emit_message(o, s, *m);
    emit_any(o, s);
    return o.str();
  }

private:
  std::map<std::string, std::string> modules_;
  std::string view_module_; ///< `View`, or `View_`... if a schema type is called so

  static std::vector<const message_def*> dependency_order(const schema& s) {
    std::vector<const message_def*> out;
    std::set<std::string> done;
    std::function<void(const message_def&)> visit = [&](const message_def& m) {
      if (done.count(m.name))
        return;
      done.insert(m.name);
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

  static void doc_comment(std::ostream& o, const std::string& doc, const char* indent) {
    if (doc.empty())
      return;
    std::string d;
    for (size_t i = 0; i < doc.size(); ++i) // keep the comment closed
      d += (doc[i] == '*' && i + 1 < doc.size() && doc[i + 1] == ')') ? "* " : std::string(1, doc[i]);
    o << indent << "(** " << d << " *)\n";
  }

  static std::map<std::string, std::string> constructors(const enum_def& e) {
    std::vector<std::string> names;
    for (auto& v : e.values)
      names.push_back(v.first);
    return unique_names(names, upper_ident);
  }

  void emit_enum(std::ostream& o, const enum_def& e) const {
    auto ctor = constructors(e);
    doc_comment(o, e.doc, "");
    o << "module " << modules_.at(e.name) << " = struct\n  type t =\n";
    for (auto& v : e.values)
      o << "    | " << ctor.at(v.first) << "\n";
    o << "\n  (** The lowest-numbered value: the implicit default. *)\n"
      << "  let default = " << ctor.at(e.values.front().first) << "\n\n"
      << "  (** Every value, by number. *)\n  let values = [";
    for (size_t i = 0; i < e.values.size(); ++i)
      o << (i ? "; " : " ") << ctor.at(e.values[i].first);
    o << " ]\n\n  let to_int = function\n";
    for (auto& v : e.values)
      o << "    | " << ctor.at(v.first) << " -> " << v.second << "\n";
    o << "\n  (** [None] for a number the enum does not declare. *)\n"
      << "  let of_int = function\n";
    for (auto& v : e.values)
      o << "    | " << v.second << " -> Some " << ctor.at(v.first) << "\n";
    o << "    | _ -> None\n\n  let to_string = function\n";
    for (auto& v : e.values)
      o << "    | " << ctor.at(v.first) << " -> " << ocaml_string(v.first) << "\n";
    o << "\n  let equal (a : t) (b : t) = a = b\nend\n\n";
  }

  std::string ocaml_type(const field_type& t) const {
    switch (t.kind) {
      case type_kind::scalar: return ocaml_scalar(t.scalar);
      case type_kind::string:
      case type_kind::bytes: return "string";
      case type_kind::enumeration:
      case type_kind::message: return modules_.at(t.ref) + ".t";
      case type_kind::array:
      case type_kind::vector: return std::string(ocaml_scalar(t.scalar)) + " array";
    }
    return "?";
  }

  std::string default_expr(const schema& s, const field_def& f) const {
    auto& t = f.type;
    auto d = effective_default(s, f);
    switch (t.kind) {
      case type_kind::scalar:
        if (t.scalar == scalar_kind::boolean)
          return d;
        if (t.scalar == scalar_kind::f64)
          return float_literal(d);
        if (t.scalar == scalar_kind::f32) // the f32 value, widened
          return "(Int32.float_of_bits (Int32.bits_of_float " + float_literal(d) + "))";
        if (is_int64(t.scalar))
          return "(" + d + "L)";
        return "(" + d + ")";
      case type_kind::string: return ocaml_string(unquote_canonical(d));
      case type_kind::bytes: return "\"\"";
      case type_kind::enumeration: {
        auto* e = s.find_enum(t.ref);
        return modules_.at(t.ref) + "." + constructors(*e).at(d);
      }
      case type_kind::message: return modules_.at(t.ref) + ".default";
      case type_kind::array: {
        const char* zero = t.scalar == scalar_kind::boolean ? "false"
                           : is_int64(t.scalar)            ? "0L"
                           : is_float(t.scalar)            ? "0."
                                                           : "0";
        return fmt::format("(Array.make {} {})", t.count, zero);
      }
      case type_kind::vector: return "[||]";
    }
    return "?";
  }

  /// Whether a value of message `m` holds a `bytes` field, itself or in a
  /// nested message: only those get a view type of their own.
  bool has_bytes(const schema& s, const message_def& m) const {
    for (auto& f : m.fields) {
      if (f.type.kind == type_kind::bytes)
        return true;
      if (f.type.kind == type_kind::message)
        if (auto* n = s.find_message(f.type.ref); n && has_bytes(s, *n))
          return true;
    }
    return false;
  }

  /// The `decode_fields` function of a message at indentation `ind`: the
  /// checks of docs/wire-protocol.md section 4 in the C++ decoder's order.
  /// With `view`, the same code reading `bytes` fields as views and nested
  /// messages as their views (the `View` submodule's decoder); every check
  /// and its order stay the same, since both come from this one function.
  void emit_decode_fields(std::ostream& o, const message_def& m,
                          const std::map<std::string, std::string>& label, bool view,
                          const std::string& ind) const {
    const std::string i1 = ind + "  ", i2 = ind + "    ", i3 = ind + "      ";
    o << ind << "let decode_fields (r : Rt__.reader) : t =\n";
    for (auto& f : m.fields)
      o << i1 << "let v__" << label.at(f.name) << " = ref default." << label.at(f.name) << " in\n";
    bool mask = m.fields.size() <= 62;
    if (!m.fields.empty())
      o << i1
        << (mask ? "let seen = ref 0 in\n"
                 : fmt::format("let seen = Bytes.make {} '\\000' in\n", m.fields.size()));
    o << i1 << "while not (Rt__.at_end r) do\n"
      << i2 << "let tag = Rt__.tag r in\n"
      << i2 << "let wt = tag land 7 in\n"
      << i2 << "match tag lsr 3 with\n";
    for (size_t i = 0; i < m.fields.size(); ++i) {
      auto& f = m.fields[i];
      auto l = label.at(f.name);
      o << i2 << "| " << f.id << " ->\n";
      if (mask)
        o << i3 << "if !seen land " << (uint64_t{1} << i)
          << " <> 0 then Rt__.fail Mycelium.Errc.Duplicate_field;\n"
          << i3 << "seen := !seen lor " << (uint64_t{1} << i) << ";\n";
      else
        o << i3 << "if Bytes.get seen " << i
          << " <> '\\000' then Rt__.fail Mycelium.Errc.Duplicate_field;\n"
          << i3 << "Bytes.set seen " << i << " '\\001';\n";
      o << i3 << "v__" << l << " := ";
      switch (f.type.kind) {
        case type_kind::scalar:
          o << "Rt__.r_" << scalar_suffix(f.type.scalar) << " r wt\n";
          break;
        case type_kind::enumeration:
          o << "(match " << modules_.at(f.type.ref) << ".of_int (Rt__.r_u32 r wt) with\n"
            << i3 << "    | Some v -> v\n"
            << i3 << "    | None -> Rt__.fail Mycelium.Errc.Bad_enum_value)\n";
          break;
        case type_kind::string:
          o << "Rt__.r_string r wt " << f.type.max << "\n";
          break;
        case type_kind::bytes:
          o << (view ? "Rt__.r_bytes_view r wt " : "Rt__.r_bytes r wt ") << f.type.max << "\n";
          break;
        case type_kind::array:
          o << "Rt__.r_array r wt " << wire_size(f.type.scalar) << " Rt__.get_"
            << scalar_suffix(f.type.scalar) << " " << f.type.count << "\n";
          break;
        case type_kind::vector:
          o << "Rt__.r_vector r wt " << wire_size(f.type.scalar) << " Rt__.get_"
            << scalar_suffix(f.type.scalar) << " " << f.type.max << "\n";
          break;
        case type_kind::message:
          o << modules_.at(f.type.ref) << (view ? "." + view_module_ : std::string{})
            << ".decode_fields (Rt__.r_sized r wt)\n";
          break;
      }
    }
    o << i2 << "| _ -> Rt__.skip r wt (* unknown field: written by a newer schema *)\n"
      << i1 << "done;\n";
    if (m.fields.empty()) {
      o << i1 << "()\n\n";
    } else {
      o << i1 << "{";
      for (size_t i = 0; i < m.fields.size(); ++i)
        o << (i ? "; " : " ") << label.at(m.fields[i].name) << " = !v__" << label.at(m.fields[i].name);
      o << " }\n\n";
    }
  }

  /// The `View` submodule of a message and its `of_view` (docs/ocaml.md,
  /// "Views"): `bytes` fields as `Mycelium.View.t`, decoded without a copy.
  void emit_view(std::ostream& o, const schema& s, const message_def& m,
                 const std::map<std::string, std::string>& label) const {
    const auto& vm = view_module_;
    if (!has_bytes(s, m)) {
      o << "  (** No [bytes] field, nested ones included: the view is the value. *)\n"
        << "  module " << vm << " = struct\n"
        << "    type nonrec t = t\n\n"
        << "    let default = default\n"
        << "    let decode_fields = decode_fields\n"
        << "    let decode = decode\n\n"
        << "    let decode_big ~scope ~off ~len (b : Mycelium.View.bigstring) : (t, Mycelium.Errc.t) result =\n"
        << "      Rt__.decode_with_big ~scope decode_fields ~off ~len b\n"
        << "  end\n\n"
        << "  let of_view (v : " << vm << ".t) : t = v\n\n";
      return;
    }
    o << "  (** [t] with every [bytes] field as a [Mycelium.View.t], nested\n"
      << "      messages as their views: decoded with the same checks, in the\n"
      << "      same order, but without copying the bytes. A view from a link is\n"
      << "      valid only until its handler returns (docs/ocaml.md, \"Views\"). *)\n"
      << "  module " << vm << " = struct\n"
      << "    type t = {\n";
    for (auto& f : m.fields) {
      std::string ty;
      if (f.type.kind == type_kind::bytes)
        ty = "Mycelium.View.t";
      else if (f.type.kind == type_kind::message)
        ty = modules_.at(f.type.ref) + "." + vm + ".t";
      else
        ty = ocaml_type(f.type);
      o << "      " << label.at(f.name) << " : " << ty << ";\n";
    }
    o << "    }\n\n"
      << "    (** Every field at its schema default (bytes: [Mycelium.View.empty]). *)\n"
      << "    let default : t = {\n";
    for (auto& f : m.fields) {
      std::string d;
      if (f.type.kind == type_kind::bytes)
        d = "Mycelium.View.empty";
      else if (f.type.kind == type_kind::message)
        d = modules_.at(f.type.ref) + "." + vm + ".default";
      else
        d = default_expr(s, f);
      o << "      " << label.at(f.name) << " = " << d << ";\n";
    }
    o << "    }\n\n"
      << "    (** As the allocating [decode_fields], with [bytes] fields as views\n"
      << "        in [r]'s scope. *)\n";
    emit_decode_fields(o, m, label, true, "    ");
    o << "    (** Views of [s] (an immutable string: they never expire); never raises. *)\n"
      << "    let decode ?(off = 0) ?len (s : string) : (t, Mycelium.Errc.t) result =\n"
      << "      Rt__.decode_with decode_fields ~off ?len s\n\n"
      << "    (** Views of [len] bytes of [b] from [off], valid until\n"
      << "        [Mycelium.View.expire scope]; never raises. *)\n"
      << "    let decode_big ~scope ~off ~len (b : Mycelium.View.bigstring) : (t, Mycelium.Errc.t) result =\n"
      << "      Rt__.decode_with_big ~scope decode_fields ~off ~len b\n"
      << "  end\n\n"
      << "  (** [v] with its views copied: the value [decode] gives for the same\n"
      << "      bytes. Raises [Mycelium.View.Expired] if they expired. *)\n"
      << "  let of_view (v : " << vm << ".t) : t =\n    {";
    for (size_t i = 0; i < m.fields.size(); ++i) {
      auto& f = m.fields[i];
      auto l = label.at(f.name);
      auto x = "v." + vm + "." + l;
      o << (i ? ";\n      " : " ") << l << " = ";
      if (f.type.kind == type_kind::bytes)
        o << "Mycelium.View.to_string " << x;
      else if (f.type.kind == type_kind::message)
        o << modules_.at(f.type.ref) << ".of_view " << x;
      else
        o << x;
    }
    o << " }\n\n";
  }

  void emit_message(std::ostream& o, const schema& s, const message_def& m) const {
    std::vector<std::string> fnames;
    for (auto& f : m.fields)
      fnames.push_back(f.name);
    auto label = unique_names(fnames, lower_ident);
    auto mod = modules_.at(m.name);
    doc_comment(o, m.doc, "");
    o << "module " << mod << " = struct\n";
    if (m.fields.empty()) {
      o << "  type t = unit\n\n";
    } else {
      o << "  type t = {\n";
      for (auto& f : m.fields) {
        doc_comment(o, f.doc, "    ");
        o << "    " << label.at(f.name) << " : " << ocaml_type(f.type) << ";\n";
      }
      o << "  }\n\n";
    }
    o << "  let type_id = " << m.id << "\n"
      << "  let type_name = " << ocaml_string(m.name) << "\n\n"
      << "  (** SHA-256 of this message's canonical form (with nested types). *)\n"
      << "  let digest = " << digest_literal(message_digest(s, m)) << "\n\n"
      << "  (** Every field at its schema default. *)\n";
    if (m.fields.empty()) {
      o << "  let default : t = ()\n\n";
    } else {
      o << "  let default : t = {\n";
      for (auto& f : m.fields)
        o << "    " << label.at(f.name) << " = " << default_expr(s, f) << ";\n";
      o << "  }\n\n";
    }
    // encoder: every field, ascending id
    o << "  (** Appends the TLV fields of [x] (no header), ascending field id. *)\n"
      << "  let encode_fields (w : Rt__.writer) (x : t) =\n";
    if (m.fields.empty())
      o << "    ()\n";
    for (size_t i = 0; i < m.fields.size(); ++i) {
      auto& f = m.fields[i];
      auto v = "x." + label.at(f.name);
      auto end = i + 1 < m.fields.size() ? ";\n" : "\n";
      switch (f.type.kind) {
        case type_kind::scalar:
          o << "    Rt__.w_" << scalar_suffix(f.type.scalar) << " w " << f.id << " " << v << end;
          break;
        case type_kind::enumeration:
          o << "    Rt__.w_u32 w " << f.id << " (" << modules_.at(f.type.ref) << ".to_int " << v
            << ")" << end;
          break;
        case type_kind::string:
        case type_kind::bytes:
          o << "    Rt__.w_sized w " << f.id << " " << v << end;
          break;
        case type_kind::array:
        case type_kind::vector:
          o << "    Rt__.w_packed w " << f.id << " " << wire_size(f.type.scalar) << " Rt__.set_"
            << scalar_suffix(f.type.scalar) << " " << v << end;
          break;
        case type_kind::message:
          o << "    (let mark = Rt__.begin_sized w " << f.id << " in\n"
            << "     " << modules_.at(f.type.ref) << ".encode_fields w " << v << ";\n"
            << "     Rt__.end_sized w mark)" << end;
          break;
      }
    }
    o << "\n";
    // decoder: any order, duplicates refused, unknown ids skipped
    o << "  (** Decodes fields until [r] is used up; raises [Rt__.Decode_error].\n"
      << "      Missing fields keep their defaults. *)\n";
    emit_decode_fields(o, m, label, false, "  ");
    o << "  (** The payload (TLV fields, no header) of [x]. *)\n"
      << "  let encode (x : t) : string = Rt__.encode_with encode_fields x\n\n"
      << "  (** Decodes a payload ([len] bytes of [s] from [off]); never raises. *)\n"
      << "  let decode ?(off = 0) ?len (s : string) : (t, Mycelium.Errc.t) result =\n"
      << "    Rt__.decode_with decode_fields ~off ?len s\n\n"
      << "  let equal (a : t) (b : t) = a = b\n\n";
    emit_view(o, s, m, label);
    o << "end\n\n";
  }

  void emit_any(std::ostream& o, const schema& s) const {
    o << "(** A value of any message type of the schema. *)\ntype any =\n";
    if (s.messages.empty())
      o << "  | No_message_types__\n";
    for (auto& m : s.messages)
      o << "  | " << modules_.at(m.name) << " of " << modules_.at(m.name) << ".t\n";
    o << "\nlet type_id_of_any = function\n";
    for (auto& m : s.messages)
      o << "  | " << modules_.at(m.name) << " _ -> " << m.id << "\n";
    if (s.messages.empty())
      o << "  | No_message_types__ -> 0\n";
    o << "\n(** Writes the fields of [x]; returns its type id. *)\n"
      << "let encode_any (w : Rt__.writer) = function\n";
    for (auto& m : s.messages)
      o << "  | " << modules_.at(m.name) << " x -> " << modules_.at(m.name)
        << ".encode_fields w x; " << m.id << "\n";
    if (s.messages.empty())
      o << "  | No_message_types__ -> 0\n";
    o << "\n(** Decodes the payload of a message of type [type_id]; raises\n"
      << "    [Rt__.Decode_error] ([Unknown_type] for an id not in the schema). *)\n"
      << "let decode_any_fields (type_id : int) (r : Rt__.reader) : any =\n"
      << "  match type_id with\n";
    for (auto& m : s.messages)
      o << "  | " << m.id << " -> " << modules_.at(m.name) << " ("
        << modules_.at(m.name) << ".decode_fields r)\n";
    o << "  | _ -> Rt__.fail Mycelium.Errc.Unknown_type\n\n"
      << "let decode_any ?(off = 0) ?len (type_id : int) (s : string) : (any, Mycelium.Errc.t) result =\n"
      << "  Rt__.decode_with (decode_any_fields type_id) ~off ?len s\n\n"
      << "(** The type-erased view of this schema that links use. *)\n"
      << "let descriptor : any Mycelium.Schema.t = {\n"
      << "  Mycelium.Schema.package;\n  digest = schema_digest;\n  types = [\n";
    for (auto& m : s.messages)
      o << "    { Mycelium.Schema.type_id = " << m.id << "; name = " << ocaml_string(m.name)
        << "; digest = " << modules_.at(m.name) << ".digest };\n";
    o << "  ];\n  decode_fields = decode_any_fields;\n  encode_fields = encode_any;\n"
      << "  type_id_of = type_id_of_any;\n}\n";
    emit_any_view(o, s);
  }

  /// The top-level `View` module: `any` with every message as its view, for
  /// a link's view handler (`Socket_link.start ~views`), and `of_view_any`.
  void emit_any_view(std::ostream& o, const schema& s) const {
    const auto& vm = view_module_;
    o << "\n(** Every message type as its view ([M." << vm << ".t]: [bytes] fields not\n"
      << "    copied): what a link's view handler gets. Valid only until the\n"
      << "    handler returns (docs/ocaml.md, \"Views\"). *)\n"
      << "module " << vm << " = struct\n  type any =\n";
    if (s.messages.empty())
      o << "    | No_message_types__\n";
    for (auto& m : s.messages)
      o << "    | " << modules_.at(m.name) << " of " << modules_.at(m.name) << "." << vm << ".t\n";
    o << "\n  let type_id_of_any = function\n";
    for (auto& m : s.messages)
      o << "    | " << modules_.at(m.name) << " _ -> " << m.id << "\n";
    if (s.messages.empty())
      o << "    | No_message_types__ -> 0\n";
    o << "\n  (** As the allocating [decode_any_fields], with views in [r]'s scope. *)\n"
      << "  let decode_any_fields (type_id : int) (r : Rt__.reader) : any =\n"
      << "    match type_id with\n";
    for (auto& m : s.messages)
      o << "    | " << m.id << " -> " << modules_.at(m.name) << " (" << modules_.at(m.name) << "."
        << vm << ".decode_fields r)\n";
    o << "    | _ -> Rt__.fail Mycelium.Errc.Unknown_type\n\n"
      << "  (** Views of [s] (never expire); never raises. *)\n"
      << "  let decode_any ?(off = 0) ?len (type_id : int) (s : string) : (any, Mycelium.Errc.t) result =\n"
      << "    Rt__.decode_with (decode_any_fields type_id) ~off ?len s\n"
      << "end\n\n"
      << "(** A view with its views copied: what [decode_any] gives for the same\n"
      << "    bytes. Raises [Mycelium.View.Expired] if they expired. *)\n"
      << "let of_view_any : " << vm << ".any -> any = function\n";
    for (auto& m : s.messages)
      o << "  | " << vm << "." << modules_.at(m.name) << " x -> " << modules_.at(m.name) << " ("
        << modules_.at(m.name) << ".of_view x)\n";
    if (s.messages.empty())
      o << "  | " << vm << ".No_message_types__ -> No_message_types__\n";
  }
};

class ocaml_emitter : public emitter {
public:
  std::string language() const override { return "ocaml"; }

  std::string emit(const schema& s, const std::string& origin) const override {
    return generator{}.run(s, origin);
  }
};

} // namespace

std::unique_ptr<emitter> make_ocaml_emitter() {
  return std::make_unique<ocaml_emitter>();
}

} // namespace mycelium::schema
