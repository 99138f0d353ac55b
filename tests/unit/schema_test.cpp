// Schema parsing and validation, canonical form and digests, compatibility.
#include <algorithm>
#include <doctest/doctest.h>

#include "mycelium/errc.hpp"
#include "mycelium/schema/compat.hpp"
#include "mycelium/schema/digest.hpp"
#include "mycelium/schema/emitter.hpp"
#include "mycelium/schema/schema_parser.hpp"

using namespace mycelium;
using namespace mycelium::schema;

namespace {

const char* base_schema = R"(
package = "demo.trading"

[enum.side]
values = { buy = 1, sell = 2 }

[message.quote]
id = 1
fields = [
  { id = 1, name = "symbol", type = "string", max = 16 },
  { id = 2, name = "bid", type = "f64" },
  { id = 3, name = "ask", type = "f64" },
]

[message.order]
id = 2
fields = [
  { id = 1, name = "symbol", type = "string", max = 16 },
  { id = 2, name = "side", type = "side" },
  { id = 3, name = "qty", type = "u32", default = 1 },
]
)";

mycelium::schema::schema must_parse(const std::string& text) {
  auto s = parse_string(text, "test.toml");
  REQUIRE_MESSAGE(s, (s ? "" : render(s.error())));
  return *s;
}

std::string error_of(const std::string& text) {
  auto s = parse_string(text, "bad.toml");
  REQUIRE_FALSE(s);
  CHECK(s.error() == make_error(errc::schema_invalid));
  return render(s.error());
}

} // namespace

TEST_CASE("schema: a valid schema parses, sorted and resolved") {
  auto s = must_parse(base_schema);
  CHECK(s.package == "demo.trading");
  REQUIRE(s.messages.size() == 2);
  CHECK(s.messages[0].name == "quote");
  CHECK(s.messages[1].fields[1].type.kind == type_kind::enumeration);
  CHECK(s.messages[1].fields[2].default_value == "1");
  CHECK(s.find_enum("side")->values[1].first == "sell");
}

TEST_CASE("schema: every validation error names file, line, column and what to do") {
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 1\nfields = [ { id = 1, "
                 "name = \"x\", type = \"f65\" } ]\n")
          .find("bad.toml:4:12: message 'a' field 'x': unknown type 'f65'")
        != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 1\nfields = [ { id = 1, "
                 "name = \"s\", type = \"string\" } ]\n")
          .find("needs 'max'") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 1\nfields = [\n { id = 1, "
                 "name = \"x\", type = \"u8\" },\n { id = 1, name = \"y\", "
                 "type = \"u8\" } ]\n")
          .find("bad.toml:6:9: message 'a' field 'y': field id 1 is already used")
        != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 1\n[message.b]\nid = 1\n")
          .find("type id 1 is already used") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 1\nfields = [ { id = 1, "
                 "name = \"s\", type = \"string\", maxx = 3 } ]\n")
          .find("unknown field key 'maxx'") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 1\nfields = [ { id = 1, "
                 "name = \"b\", type = \"b\" } ]\n[message.b]\nid = 2\nfields "
                 "= [ { id = 1, name = \"a\", type = \"a\" } ]\n")
          .find("nesting cycle") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 4294901760\n")
          .find("control frames") != std::string::npos);
  // 0xFFFE0000 and up belong to the runtime's node-local messages.
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 4294836224\n")
          .find("reserved for the runtime's own messages") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nfields = []\n")
          .find("has no 'id'") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.class]\nid = 1\n")
          .find("message name 'class' is a reserved word") != std::string::npos);
  CHECK(error_of("package = \"demo.new\"\n").find("not reserved words") != std::string::npos);
  CHECK(error_of("[message.a]\nid = 1\n").find("missing 'package") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = 1\nfields = [ { id = 1, "
                 "name = \"q\", type = \"u8\", default = 300 } ]\n")
          .find("default must be within the range of u8") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[enum.e]\nvalues = { a = 1, b = 1 }\n")
          .find("value 1 is used twice") != std::string::npos);
  CHECK(error_of("package = \"p\"\n[message.a]\nid = = 1\n")
          .find("TOML syntax error") != std::string::npos);
  CHECK(error_of("package = \"p\"\nextra = 1\n").find("unknown top-level key 'extra'")
        != std::string::npos);
  // several problems are reported together
  auto many = error_of("package = \"p\"\n[message.a]\nid = 1\nfields = [ { id = 1, "
                       "name = \"x\", type = \"nope\" } ]\n[message.b]\nfields = []\n");
  CHECK(many.find("unknown type 'nope'") != std::string::npos);
  CHECK(many.find("message 'b' has no 'id'") != std::string::npos);
  auto missing = parse_file("/nonexistent/schema.toml");
  REQUIRE_FALSE(missing);
  CHECK(render(missing.error()).find("cannot open the file") != std::string::npos);
}

TEST_CASE("digest: stable under comments, whitespace, key order and field order") {
  auto a = must_parse(base_schema);
  auto c = must_parse(std::string{"package = \"demo.trading\"\n"} + R"(
# the same schema, written differently: comments, order of tables,
# keys, fields and enum values
[message.order]   # order first
fields = [
  { type = "u32", name = "qty", id = 3, default = 1 },
  { id = 2, name = "side", type = "side" },
  { id = 1, name = "symbol", type = "string", max = 16 },
]
id = 2
[message.quote]
id = 1
fields = [ { id = 2, name = "bid", type = "f64" }, { id = 3, name = "ask", type = "f64" },
           { id = 1, name = "symbol", type = "string", max = 16 } ]
[enum.side]
values = { sell = 2, buy = 1 }   # value order differs too
)");
  CHECK(schema_digest(a) == schema_digest(c));
  CHECK(canonical_form(a) == canonical_form(c));
  // an explicit default equal to the implicit one is the same schema
  auto d = must_parse(std::string{base_schema}.replace(
    std::string{base_schema}.find("type = \"f64\" },"), 15,
    "type = \"f64\", default = 0.0 },"));
  CHECK(schema_digest(a) == schema_digest(d));
}

TEST_CASE("digest: any change to a type changes it, and per-message digests follow nesting") {
  auto a = must_parse(base_schema);
  auto base = std::string{base_schema};
  auto changed = [&](const std::string& from, const std::string& to) {
    auto text = base;
    auto pos = text.find(from);
    REQUIRE(pos != std::string::npos);
    text.replace(pos, from.size(), to);
    return must_parse(text);
  };
  auto b = changed("name = \"bid\", type = \"f64\"", "name = \"bid\", type = \"f32\"");
  CHECK(schema_digest(a) != schema_digest(b));
  CHECK(message_digest(a, a.messages[0]) != message_digest(b, b.messages[0]));
  CHECK(message_digest(a, a.messages[1]) == message_digest(b, b.messages[1]));
  CHECK(schema_digest(a) != schema_digest(changed("max = 16 },\n  { id = 2, name = \"bid\"",
                                                  "max = 17 },\n  { id = 2, name = \"bid\"")));
  CHECK(schema_digest(a) != schema_digest(changed("name = \"ask\"", "name = \"offer\"")));
  CHECK(schema_digest(a) != schema_digest(changed("id = 2\n", "id = 3\n")));
  CHECK(schema_digest(a) != schema_digest(changed("default = 1", "default = 2")));
  CHECK(schema_digest(a) != schema_digest(changed("demo.trading", "demo.other")));
  // an enum change reaches the digest of the message using it
  auto e = changed("sell = 2", "sell = 3");
  CHECK(message_digest(a, a.messages[1]) != message_digest(e, e.messages[1]));
  CHECK(message_digest(a, a.messages[0]) == message_digest(e, e.messages[0]));
  CHECK(to_hex(sha256("abc"))
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("compat: the evolution rules of docs/schema.md") {
  auto a = must_parse(base_schema);
  auto base = std::string{base_schema};
  auto with = [&](const std::string& from, const std::string& to) {
    auto text = base;
    auto pos = text.find(from);
    REQUIRE(pos != std::string::npos);
    text.replace(pos, from.size(), to);
    return must_parse(text);
  };
  auto breaking = [&](const mycelium::schema::schema& n, const std::string& needle) {
    bool any = false;
    bool found = false;
    for (auto& f : check_compat(a, n)) {
      any = any || f.breaking;
      found = found || (f.breaking && f.text.find(needle) != std::string::npos);
    }
    CHECK_MESSAGE(any, "expected a breaking change: " << needle);
    CHECK_MESSAGE(found, "expected a finding mentioning: " << needle);
  };
  auto compatible = [&](const mycelium::schema::schema& n, const std::string& needle) {
    bool found = false;
    for (auto& f : check_compat(a, n)) {
      CHECK_MESSAGE(!f.breaking, f.text);
      found = found || f.text.find(needle) != std::string::npos;
    }
    CHECK_MESSAGE(found, "expected a note mentioning: " << needle);
  };
  CHECK(check_compat(a, a).empty());
  compatible(with("{ id = 3, name = \"ask\", type = \"f64\" },",
                  "{ id = 3, name = \"ask\", type = \"f64\" },\n  { id = 4, name "
                  "= \"ts\", type = \"u64\" },"),
             "field 4 'ts' added");
  compatible(with("  { id = 3, name = \"ask\", type = \"f64\" },\n", ""),
             "field 3 'ask': removed");
  compatible(with("[message.order]", "[message.trade]\nid = 9\n[message.order]"),
             "message 'trade' (id 9) added");
  compatible(with("name = \"ask\"", "name = \"offer\""), "renamed to 'offer'");
  breaking(with("demo.trading", "demo.other"), "package renamed");
  breaking(with("name = \"bid\", type = \"f64\"", "name = \"bid\", type = \"f32\""),
           "field 2 'bid': type changed from f64 to f32");
  breaking(with("{ id = 3, name = \"ask\"", "{ id = 4, name = \"ask\""),
           "field id changed from 3 to 4");
  breaking(with("id = 2\n", "id = 7\n"), "type id changed from 2 to 7");
  breaking(with("[message.quote]\nid = 1", "[message.quote2]\nid = 1"),
           "renamed to 'quote2'");
  breaking(with("default = 1", "default = 5"), "default changed");
  breaking(with("sell = 2 }", "sell = 2, cancel = 3 }"), "value 'cancel' (3) added");
  breaking(with("sell = 2", "sell = 4"), "renumbered from 2 to 4");
  // spelling out the implicit default is no change at all
  CHECK(check_compat(a, with("name = \"bid\", type = \"f64\"",
                             "name = \"bid\", type = \"f64\", default = 0")).empty());
  breaking(with("max = 16 },\n  { id = 2, name = \"bid\"", "max = 32 },\n  { id = 2, name = \"bid\""),
           "string[16] to string[32]");
}

TEST_CASE("emitter: the C++ back-end is registered and emits every message") {
  auto s = must_parse(base_schema);
  auto em = make_emitter("cpp");
  REQUIRE(em != nullptr);
  auto code = em->emit(s, "test.toml");
  CHECK(code.find("namespace demo::trading") != std::string::npos);
  CHECK(code.find("struct quote {") != std::string::npos);
  CHECK(code.find("static constexpr ::std::uint32_t type_id = 2;") != std::string::npos);
  CHECK(code.find(to_hex(schema_digest(s))) != std::string::npos);
  CHECK(make_emitter("cobol") == nullptr);
}

TEST_CASE("emitter: the OCaml back-end is registered and emits a module per type") {
  auto s = must_parse(base_schema);
  auto em = make_emitter("ocaml");
  REQUIRE(em != nullptr);
  CHECK(em->language() == "ocaml");
  auto langs = emitter_languages();
  CHECK(std::find(langs.begin(), langs.end(), "ocaml") != langs.end());
  auto code = em->emit(s, "test.toml");
  CHECK(code.find("module Quote = struct") != std::string::npos);
  CHECK(code.find("  let type_id = 2\n") != std::string::npos);
  CHECK(code.find("let descriptor : any Mycelium.Schema.t") != std::string::npos);
  CHECK(code.find(to_hex(schema_digest(s))) != std::string::npos);
}
