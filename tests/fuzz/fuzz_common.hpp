// Helpers shared by the libFuzzer targets in tests/fuzz (fuzz_decode.cpp,
// fuzz_link.cpp): hex dumps, exact-size copies, the equality the round-trip
// checks use, the list of message types of the test schema
// (tests/schemas/test_messages.toml) and the seed file writer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "mycelium/codec.hpp"
#include "test_messages.hpp"

namespace mycelium::fuzz {

inline std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

inline std::string hex(const std::vector<uint8_t>& b) {
  return hex(b.data(), b.size());
}

/// An exact-size heap copy, so that AddressSanitizer flags any read past
/// the end of a region that is shorter than the fuzzer's input.
inline std::unique_ptr<uint8_t[]> exact_copy(const uint8_t* p, size_t n) {
  std::unique_ptr<uint8_t[]> out{new uint8_t[n > 0 ? n : 1]};
  if (n > 0)
    std::memcpy(out.get(), p, n);
  return out;
}

// -- generated message types --------------------------------------------------

template <class T>
std::vector<uint8_t> payload_of(const T& x) {
  std::vector<uint8_t> out;
  encode_payload(x, out);
  return out;
}

/// Equal by canonical encoding (bit-exact, covers NaN payloads and -0.0) and
/// by operator== unless `a` compares unequal to itself (it holds a NaN).
template <class T>
bool same(const T& a, const T& b) {
  if (payload_of(a) != payload_of(b))
    return false;
  return a == b || !(a == a);
}

/// Calls f(T{}) for every message type of the test schema.
template <class F>
void for_each_type(F&& f) {
  namespace t = mycelium::test;
  f(t::all_scalars{});
  f(t::texts{});
  f(t::collections{});
  f(t::leg{});
  f(t::order{});
  f(t::ping{});
  f(t::pong{});
  f(t::price_request{});
  f(t::price_reply{});
  f(t::fail_now{});
}

/// Exits with a message unless for_each_type covers every message type of
/// the test schema (call it from LLVMFuzzerInitialize).
inline void require_all_types_covered(const char* prog) {
  const auto& d = mycelium::test::descriptor();
  size_t covered = 0;
  for_each_type([&](auto proto) {
    using T = decltype(proto);
    if (d.find(T::type_id) != nullptr)
      ++covered;
  });
  if (covered != d.types.size()) {
    std::fprintf(stderr, "%s: the test schema has %zu message types but "
                         "for_each_type() in tests/fuzz/fuzz_common.hpp covers "
                         "%zu; add the new types there\n",
                 prog, d.types.size(), covered);
    std::exit(2);
  }
}

// -- handshake ----------------------------------------------------------------

inline bool same(const wire::hello& a, const wire::hello& b) {
  if (a.magic != b.magic || a.version != b.version
      || a.schema_digest != b.schema_digest || a.node != b.node
      || a.service != b.service || a.pid != b.pid
      || a.auth_proof != b.auth_proof || a.nonce != b.nonce
      || a.auth_scheme_id != b.auth_scheme_id
      || a.types.size() != b.types.size())
    return false;
  for (size_t i = 0; i < a.types.size(); ++i)
    if (a.types[i].type_id != b.types[i].type_id
        || a.types[i].name != b.types[i].name
        || a.types[i].digest != b.types[i].digest)
      return false;
  return true;
}

inline bool same(const wire::refuse& a, const wire::refuse& b) {
  return a.reason == b.reason && a.text == b.text && a.code == b.code;
}

inline bool same(const wire::auth& a, const wire::auth& b) {
  return a.proof == b.proof;
}

// -- seed corpus --------------------------------------------------------------

inline void write_file(const char* prog, const std::string& dir,
                       const std::string& name, const std::vector<uint8_t>& bytes) {
  auto path = dir + "/" + name;
  std::ofstream out{path, std::ios::binary};
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "%s: cannot write %s\n", prog, path.c_str());
    std::exit(2);
  }
}

/// The value of flag `--name=VALUE` among argv, or nullptr. libFuzzer
/// ignores flags that start with "--".
inline const char* flag_value(int argc, char** argv, const char* name) {
  auto len = std::strlen(name);
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--", 2) == 0
        && std::strncmp(argv[i] + 2, name, len) == 0 && argv[i][2 + len] == '=')
      return argv[i] + 3 + len;
  return nullptr;
}

} // namespace mycelium::fuzz
