// mycelium-codegen: generates code from a schema, prints its canonical form
// and digest, and checks whether a schema change is compatible.
//
//   mycelium-codegen generate --lang cpp --output out.hpp schema.toml
//   mycelium-codegen digest schema.toml
//   mycelium-codegen --check old.toml new.toml
//
// Exit codes: 0 ok / compatible, 1 incompatible, 2 bad input.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "mycelium/errc.hpp"
#include "mycelium/schema/compat.hpp"
#include "mycelium/schema/digest.hpp"
#include "mycelium/schema/emitter.hpp"
#include "mycelium/schema/schema_parser.hpp"

namespace ms = mycelium::schema;

namespace {

bool load(const std::string& path, ms::schema& out) {
  auto s = ms::parse_file(path);
  if (!s) {
    std::cerr << "mycelium-codegen: invalid schema\n" << mycelium::render(s.error()) << "\n";
    return false;
  }
  out = std::move(*s);
  return true;
}

int check(const std::string& old_path, const std::string& new_path) {
  ms::schema o;
  ms::schema n;
  if (!load(old_path, o) || !load(new_path, n))
    return 2;
  auto findings = ms::check_compat(o, n);
  bool breaking = false;
  for (auto& f : findings) {
    std::cout << (f.breaking ? "INCOMPATIBLE: " : "ok: ") << f.text << "\n";
    breaking = breaking || f.breaking;
  }
  if (findings.empty())
    std::cout << "ok: no changes to types (digests equal: "
              << (ms::schema_digest(o) == ms::schema_digest(n) ? "yes" : "no")
              << ")\n";
  std::cout << (breaking ? "result: incompatible" : "result: compatible")
            << " (" << old_path << " -> " << new_path << ")\n";
  return breaking ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mycelium-codegen: code generation, digests and compatibility "
               "checks for Mycelium schemas (docs/schema.md)"};
  app.require_subcommand(0, 1);
  std::vector<std::string> check_files;
  app.add_option("--check", check_files,
                 "compare OLD.toml NEW.toml by the evolution rules; exit 0 if "
                 "compatible, 1 if not, 2 on bad input")
    ->expected(2);

  auto* gen = app.add_subcommand("generate", "emit code for a schema");
  std::string lang = "cpp";
  std::string output;
  std::string schema_file;
  gen->add_option("--lang", lang, "target language")
    ->check(CLI::IsMember(ms::emitter_languages()));
  gen->add_option("-o,--output", output, "output file (default: stdout)");
  gen->add_option("schema", schema_file, "schema file (.toml)")->required();

  auto* dig = app.add_subcommand("digest", "print the schema digest, the "
                                           "per-message digests and, with "
                                           "--canonical, the canonical form");
  std::string digest_file;
  bool canonical = false;
  dig->add_option("schema", digest_file, "schema file (.toml)")->required();
  dig->add_flag("--canonical", canonical, "also print the canonical form");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e); // prints help or the usage error
    return rc == 0 ? 0 : 2;
  }

  if (!check_files.empty())
    return check(check_files[0], check_files[1]);
  if (gen->parsed()) {
    ms::schema s;
    if (!load(schema_file, s))
      return 2;
    auto em = ms::make_emitter(lang);
    auto text = em->emit(s, schema_file);
    if (output.empty()) {
      std::cout << text;
      return 0;
    }
    // Write to a temporary file and rename, so a failed run leaves no
    // half-written header behind for the build to pick up.
    auto tmp = output + ".tmp";
    {
      std::ofstream out{tmp, std::ios::binary};
      out << text;
      if (!out) {
        std::cerr << "mycelium-codegen: cannot write " << tmp << "\n";
        return 2;
      }
    }
    if (std::rename(tmp.c_str(), output.c_str()) != 0) {
      std::cerr << "mycelium-codegen: cannot rename " << tmp << " to " << output << "\n";
      return 2;
    }
    return 0;
  }
  if (dig->parsed()) {
    ms::schema s;
    if (!load(digest_file, s))
      return 2;
    std::cout << "schema " << s.package << " " << ms::to_hex(ms::schema_digest(s)) << "\n";
    for (auto& m : s.messages)
      std::cout << "message " << m.id << " " << m.name << " "
                << ms::to_hex(ms::message_digest(s, m)) << "\n";
    if (canonical)
      std::cout << "--- canonical form ---\n" << ms::canonical_form(s);
    return 0;
  }
  std::cout << app.help();
  return 2;
}
