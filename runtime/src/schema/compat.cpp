#include "mycelium/schema/compat.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "mycelium/schema/digest.hpp"

namespace mycelium::schema {

std::vector<compat_finding> check_compat(const schema& o, const schema& n) {
  std::vector<compat_finding> out;
  auto breaking = [&](std::string text) { out.push_back({true, std::move(text)}); };
  auto note = [&](std::string text) { out.push_back({false, std::move(text)}); };
  if (o.package != n.package)
    breaking(fmt::format("package renamed from '{}' to '{}' (rule 1)", o.package,
                         n.package));
  // Enums: the decoder refuses unknown values, so any change to the value set
  // of an enum that both sides use breaks the older side.
  for (auto& oe : o.enums) {
    auto* ne = n.find_enum(oe.name);
    if (!ne) {
      bool used = false;
      for (auto& m : n.messages)
        for (auto& f : m.fields)
          used = used || f.type.ref == oe.name;
      if (!used)
        note(fmt::format("enum '{}' removed (unused by the new schema)", oe.name));
      continue;
    }
    for (auto& [name, value] : oe.values) {
      auto it = std::find_if(ne->values.begin(), ne->values.end(),
                             [&](auto& kv) { return kv.first == name; });
      if (it == ne->values.end())
        breaking(fmt::format("enum '{}': value '{}' ({}) removed (rule 6)",
                             oe.name, name, value));
      else if (it->second != value)
        breaking(fmt::format("enum '{}': value '{}' renumbered from {} to {} "
                             "(rule 6)", oe.name, name, value, it->second));
    }
    for (auto& [name, value] : ne->values)
      if (std::none_of(oe.values.begin(), oe.values.end(),
                       [&](auto& kv) { return kv.first == name; }))
        breaking(fmt::format("enum '{}': value '{}' ({}) added; decoders of the "
                             "old schema refuse it as bad_enum_value (rule 6)",
                             oe.name, name, value));
  }
  for (auto& ne : n.enums)
    if (!o.find_enum(ne.name))
      note(fmt::format("enum '{}' added", ne.name));
  for (auto& om : o.messages) {
    auto* nm = n.find_message(om.name);
    if (!nm) {
      if (auto* same_id = n.find_message(om.id))
        breaking(fmt::format("message '{}' (id {}) renamed to '{}' (rule 2)",
                             om.name, om.id, same_id->name));
      else
        breaking(fmt::format("message '{}' (id {}) removed; peers on the old "
                             "schema may still publish it (rule 2)", om.name,
                             om.id));
      continue;
    }
    if (nm->id != om.id) {
      breaking(fmt::format("message '{}': type id changed from {} to {} "
                           "(rule 2)", om.name, om.id, nm->id));
    }
    for (auto& of : om.fields) {
      auto prefix = fmt::format("message '{}' field {} '{}'", om.name, of.id,
                                of.name);
      const field_def* nf = nullptr;
      for (auto& f : nm->fields)
        if (f.id == of.id)
          nf = &f;
      if (!nf) {
        const field_def* moved = nullptr;
        for (auto& f : nm->fields)
          if (f.name == of.name)
            moved = &f;
        if (moved)
          breaking(fmt::format("{}: field id changed from {} to {} (rule 3)",
                               prefix, of.id, moved->id));
        else
          note(fmt::format("{}: removed; old readers will see its default, "
                           "never reuse id {} (rule 5)", prefix, of.id));
        continue;
      }
      auto ot = to_string(of.type);
      auto nt = to_string(nf->type);
      if (ot != nt)
        breaking(fmt::format("{}: type changed from {} to {} (rule 3)", prefix,
                             ot, nt));
      auto od = effective_default(o, of);
      auto nd = effective_default(n, *nf);
      if (ot == nt && od != nd)
        breaking(fmt::format("{}: default changed from '{}' to '{}' (rule 4)",
                             prefix, od, nd));
      if (of.name != nf->name)
        note(fmt::format("{}: renamed to '{}' (wire-compatible; source code "
                         "using the old name breaks)", prefix, nf->name));
    }
    for (auto& f : nm->fields) {
      bool existed = std::any_of(om.fields.begin(), om.fields.end(),
                                 [&](auto& x) { return x.id == f.id; });
      if (!existed)
        note(fmt::format("message '{}': field {} '{}' added (old readers skip "
                         "it, new readers default it when absent; rule 5)",
                         nm->name, f.id, f.name));
    }
  }
  for (auto& nm : n.messages)
    if (!o.find_message(nm.name) && !o.find_message(nm.id))
      note(fmt::format("message '{}' (id {}) added", nm.name, nm.id));
  return out;
}

} // namespace mycelium::schema
