// The TOML toolkit shared by the schema, backtest and topology readers.

#include <doctest/doctest.h>

#include <caf/error.hpp>

#include "mycelium/config/toml_reader.hpp"

using namespace mycelium;
using namespace mycelium::config;
using namespace std::chrono_literals;

namespace {

/// The error's text without the "code: " prefix of `render`.
std::string text_of(const caf::error& err) {
  auto text = render(err);
  auto colon = text.find(": ");
  return colon == std::string::npos ? text : text.substr(colon + 2);
}

toml_value parse(const std::string& text) {
  auto v = parse_toml_string(text, "t.toml");
  REQUIRE_MESSAGE(v, "parse failed");
  return *v;
}

} // namespace

TEST_CASE("toml_reader: syntax errors name file, line and column") {
  auto v = parse_toml_string("a = 1\nb = = 2\n", "t.toml");
  REQUIRE_FALSE(v);
  CHECK(v.error() == make_error(errc::config_invalid));
  auto text = text_of(v.error());
  CHECK_MESSAGE(text.find("t.toml:2:") == 0, text);
  CHECK(text.find("TOML syntax error") != std::string::npos);
  auto missing = parse_toml_file("/nonexistent/x.toml", errc::schema_invalid);
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == make_error(errc::schema_invalid));
  CHECK(text_of(missing.error()) == "/nonexistent/x.toml: cannot open the file "
                                    "(check the path and its permissions)");
}

TEST_CASE("toml_reader: unknown keys suggest the closest known key") {
  auto root = parse("name = 1\nservces = []\nother = 2\n");
  toml_reader r{"t.toml"};
  r.check_keys(root, "node 'a'", {"name", "services", "host"});
  REQUIRE_FALSE(r.ok());
  auto text = text_of(r.error());
  CHECK(text == "t.toml:2:11: node 'a' unknown key 'servces' (known keys: name, "
                "services, host; did you mean 'services'?)\n"
                "t.toml:3:9: node 'a' unknown key 'other' (known keys: name, "
                "services, host)");
  CHECK(closest({"shm", "unix", "tcp"}, "unx") == "unix");
  CHECK(closest({"shm", "unix", "tcp"}, "websocket").empty());
}

TEST_CASE("toml_reader: typed values check kind and range") {
  auto root = parse("i = 7\ns = \"x\"\nb = true\nf = 1.5\nl = [\"a\", 2]\n");
  toml_reader r{"t.toml"};
  auto* t = &root;
  CHECK(r.integer(*toml_reader::find(t, "i"), "k", "i", 0, 10) == 7);
  CHECK(r.string(*toml_reader::find(t, "s"), "k", "s") == "x");
  CHECK(r.boolean(*toml_reader::find(t, "b"), "k", "b") == true);
  CHECK(r.number(*toml_reader::find(t, "f"), "k", "f") == 1.5);
  CHECK(r.ok());
  CHECK_FALSE(r.integer(*toml_reader::find(t, "i"), "k", "i", 8, 10));
  CHECK_FALSE(r.string(*toml_reader::find(t, "i"), "k", "i"));
  CHECK_FALSE(r.string_array(*toml_reader::find(t, "l"), "k", "l"));
  CHECK_FALSE(r.choice(*toml_reader::find(t, "s"), "k", "s", {"y", "z"}));
  auto text = text_of(r.error());
  CHECK(text.find("t.toml:1:5: k 'i': 7 is out of range; use 8 to 10") != std::string::npos);
  CHECK(text.find("t.toml:1:5: k 'i': must be a string in double quotes, not an integer")
        != std::string::npos);
  CHECK_MESSAGE(text.find("t.toml:5:11: k 'l': element 2 must be a string, not an "
                          "integer") != std::string::npos, text);
  CHECK(text.find("k 's': \"x\" is not one of y, z") != std::string::npos);
}

TEST_CASE("toml_reader: durations and sizes take units") {
  auto root = parse("a = \"250us\"\nb = \"10ms\"\nc = \"2s\"\nd = 5\ne = \"1min\"\n"
                    "f = \"fast\"\ng = \"4MiB\"\nh = 4096\ni = \"64KiB\"\nj = \"3 parsecs\"\n"
                    "k = -1\n");
  toml_reader r{"t.toml"};
  auto at = [&](const char* key) { return *toml_reader::find(&root, key); };
  CHECK(r.duration(at("a"), "k", "a") == 250us);
  CHECK(r.duration(at("b"), "k", "b") == 10ms);
  CHECK(r.duration(at("c"), "k", "c") == 2s);
  CHECK(r.duration(at("d"), "k", "d") == 5ms);
  CHECK(r.duration(at("d"), "k", "d", 1s) == 5s);
  CHECK(r.duration(at("e"), "k", "e") == 60s);
  CHECK(r.byte_size(at("g"), "k", "g") == uint64_t{4} << 20);
  CHECK(r.byte_size(at("h"), "k", "h") == 4096);
  CHECK(r.byte_size(at("i"), "k", "i") == 65536);
  CHECK(r.ok());
  CHECK_FALSE(r.duration(at("f"), "k", "f"));
  CHECK_FALSE(r.byte_size(at("j"), "k", "j"));
  CHECK_FALSE(r.duration(at("k"), "k", "k"));
  auto text = text_of(r.error());
  CHECK(text.find("t.toml:6:5: k 'f': \"fast\" is not a duration; write a duration "
                  "such as \"250us\"") != std::string::npos);
  CHECK(text.find("t.toml:10:5: k 'j': \"3 parsecs\" is not a size") != std::string::npos);
  CHECK(text.find("t.toml:11:5: k 'k': -1 is negative") != std::string::npos);
}

TEST_CASE("toml_reader: relative paths resolve against the file's directory") {
  CHECK(resolve_path("/etc/x/t.toml", "data/a.csv") == "/etc/x/data/a.csv");
  CHECK(resolve_path("/etc/x/t.toml", "/abs/a.csv") == "/abs/a.csv");
  CHECK(resolve_path("t.toml", "a.csv") == "a.csv");
}

TEST_CASE("toml_reader: command-line durations use the same units") {
  CHECK(parse_duration("250us") == 250us);
  CHECK(parse_duration("2s") == 2s);
  CHECK(parse_duration("1min") == 60s);
  CHECK_FALSE(parse_duration("fast"));
  CHECK_FALSE(parse_duration("10 parsecs"));
  CHECK_FALSE(parse_duration(""));
}
