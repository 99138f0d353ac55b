// libFuzzer target mycelium_fuzz_decode: arbitrary bytes into every decoder
// a link runs on untrusted input, with a round-trip property on success.
//
// Each input is used twice:
//  1. as a whole frame: mycelium::decode_frame() with the test schema
//     (tests/schemas/test_messages.toml); control frames of type hello /
//     refuse go to wire::decode(.., hello&) / decode(.., refuse&);
//  2. as a bare payload (the bytes after the 24-byte header, or all bytes of
//     a shorter input): decode_payload<T>() for every message type T of the
//     schema, and wire::decode() for hello and refuse.
//
// Whenever a decode succeeds, the value is re-encoded, the re-encoded bytes
// must decode again (through the same path and through the frame path), and
// the result must equal the first value: same canonical encoding and
// operator== (operator== only where the value is not NaN-bearing, since
// NaN != NaN). Any violation prints what happened and calls abort(), which
// libFuzzer reports as a crash together with the reproducer file.
//
// Extra mode: `mycelium_fuzz_decode --write-seeds=DIR` writes the seed
// corpus (valid frames of every type) to DIR and exits; libFuzzer ignores
// flags that start with "--".

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "mycelium/codec.hpp"
#include "test_messages.hpp"

namespace w = mycelium::wire;
namespace t = mycelium::test;
using mycelium::errc;

namespace {

[[noreturn]] void violation(const char* what, const char* type, errc e = errc::none) {
  std::fprintf(stderr, "mycelium_fuzz_decode: ROUND-TRIP VIOLATION (%s): %s [%s]\n",
               type, what, mycelium::to_string(e));
  std::abort();
}

std::string hex(const std::vector<uint8_t>& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

constexpr uint32_t max_payload = w::default_max_payload;

// -- generated message types --------------------------------------------------

template <class T>
std::vector<uint8_t> payload_of(const T& x) {
  std::vector<uint8_t> out;
  mycelium::encode_payload(x, out);
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

/// The round trip of one successfully decoded value of message type T.
template <class T>
void check_message(const T& v) {
  auto enc = payload_of(v);
  // (a) payload path
  T v2;
  if (auto e = mycelium::decode_payload(enc.data(), enc.size(), v2); e != errc::none) {
    std::fprintf(stderr, "re-encoded payload: %s\n", hex(enc).c_str());
    violation("re-encoded payload does not decode", T::type_name, e);
  }
  if (!same(v, v2)) {
    std::fprintf(stderr, "first:  %s\nsecond: %s\n", hex(enc).c_str(),
                 hex(payload_of(v2)).c_str());
    violation("re-encoded payload decodes to a different value", T::type_name);
  }
  // (b) frame path through the type-erased descriptor
  std::vector<uint8_t> frame;
  mycelium::encode_frame(v, 42, frame);
  w::frame_header h;
  caf::message msg;
  if (auto e = mycelium::decode_frame(t::descriptor(), frame.data(), frame.size(),
                                      max_payload, h, msg);
      e != errc::none) {
    std::fprintf(stderr, "re-encoded frame: %s\n", hex(frame).c_str());
    violation("re-encoded frame does not decode", T::type_name, e);
  }
  if (h.type_id != T::type_id || h.sequence != 42 || h.flags != 0
      || h.payload_length != enc.size())
    violation("re-encoded frame header differs", T::type_name);
  if (msg.size() != 1 || !msg.match_element<T>(0))
    violation("decode_frame produced a message of another type", T::type_name);
  if (!same(v, msg.get_as<T>(0)))
    violation("re-encoded frame decodes to a different value", T::type_name);
  // (c) the descriptor's type-erased encoder writes the same payload
  std::vector<uint8_t> enc3;
  uint32_t tid = 0;
  if (!t::descriptor().encode(msg, enc3, tid) || tid != T::type_id || enc3 != enc)
    violation("descriptor().encode disagrees with encode_payload", T::type_name);
}

template <class T>
void fuzz_payload(const uint8_t* p, size_t n) {
  T v;
  if (mycelium::decode_payload(p, n, v) == errc::none)
    check_message(v);
}

/// Calls f(T{}) for every message type of the test schema.
template <class F>
void for_each_type(F&& f) {
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

/// The round trip of a caf::message that decode_frame produced for `type_id`.
void check_frame_message(const w::frame_header& h, const caf::message& msg) {
  bool matched = false;
  for_each_type([&](auto proto) {
    using T = decltype(proto);
    if (h.type_id != T::type_id)
      return;
    matched = true;
    if (msg.size() != 1 || !msg.match_element<T>(0))
      violation("decode_frame result does not hold the header's type", T::type_name);
    check_message(msg.get_as<T>(0));
  });
  if (!matched)
    violation("decode_frame accepted a type id outside the schema", "frame");
}

// -- handshake ----------------------------------------------------------------

bool same(const w::hello& a, const w::hello& b) {
  if (a.magic != b.magic || a.version != b.version
      || a.schema_digest != b.schema_digest || a.node != b.node
      || a.service != b.service || a.pid != b.pid
      || a.auth_proof != b.auth_proof || a.types.size() != b.types.size())
    return false;
  for (size_t i = 0; i < a.types.size(); ++i)
    if (a.types[i].type_id != b.types[i].type_id
        || a.types[i].name != b.types[i].name
        || a.types[i].digest != b.types[i].digest)
      return false;
  return true;
}

bool same(const w::refuse& a, const w::refuse& b) {
  return a.reason == b.reason && a.text == b.text;
}

template <class T>
void check_control(const T& v, w::control_type expected, const char* name) {
  std::vector<uint8_t> frame;
  w::encode_frame(frame, v, 7);
  w::frame_header h;
  if (auto e = w::frame_header::read(frame.data(), frame.size(), max_payload, h);
      e != errc::none) {
    std::fprintf(stderr, "re-encoded frame: %s\n", hex(frame).c_str());
    violation("re-encoded control frame header does not parse", name, e);
  }
  if (h.type_id != static_cast<uint32_t>(expected)
      || (h.flags & w::frame_header::flag_control) == 0 || h.sequence != 7
      || frame.size() != w::frame_header::size + h.payload_length)
    violation("re-encoded control frame header differs", name);
  T v2;
  if (auto e = w::decode(frame.data() + w::frame_header::size, h.payload_length, v2);
      e != errc::none) {
    std::fprintf(stderr, "re-encoded frame: %s\n", hex(frame).c_str());
    violation("re-encoded control payload does not decode", name, e);
  }
  if (!same(v, v2)) {
    std::fprintf(stderr, "re-encoded frame: %s\n", hex(frame).c_str());
    violation("re-encoded control payload decodes to a different value", name);
  }
}

void fuzz_hello(const uint8_t* p, size_t n) {
  w::hello v;
  if (w::decode(p, n, v) == errc::none) {
    if (v.magic != w::hello_magic)
      violation("decode(hello) accepted a bad magic", "hello");
    check_control(v, w::control_type::hello, "hello");
    // check_hello must cope with any decoded peer hello.
    auto local = mycelium::make_hello(t::descriptor(), "local", "fuzz", 1);
    auto r = w::check_hello(local, v);
    if (r.reason == errc::none && v.schema_digest != local.schema_digest)
      violation("check_hello accepted a different schema digest", "hello");
  }
}

void fuzz_refuse(const uint8_t* p, size_t n) {
  w::refuse v;
  if (w::decode(p, n, v) == errc::none)
    check_control(v, w::control_type::refuse, "refuse");
}

// -- seed corpus --------------------------------------------------------------

void write_file(const std::string& dir, const std::string& name,
                const std::vector<uint8_t>& bytes) {
  auto path = dir + "/" + name;
  std::ofstream out{path, std::ios::binary};
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "mycelium_fuzz_decode: cannot write %s\n", path.c_str());
    std::exit(2);
  }
}

template <class T>
void seed(const std::string& dir, const std::string& name, const T& x) {
  std::vector<uint8_t> frame;
  mycelium::encode_frame(x, 1, frame);
  write_file(dir, std::string{"seed-"} + T::type_name + "-" + name, frame);
}

void write_seeds(const std::string& dir) {
  seed(dir, "default", t::all_scalars{});
  {
    t::all_scalars x;
    x.a_u8 = 255;
    x.a_u16 = 65535;
    x.a_u32 = 4294967295u;
    x.a_u64 = UINT64_MAX;
    x.a_i8 = -128;
    x.a_i16 = -32768;
    x.a_i32 = INT32_MIN;
    x.a_i64 = INT64_MIN;
    x.a_f32 = 1.5f;
    x.a_f64 = -2.25;
    x.a_bool = true;
    seed(dir, "extremes", x);
  }
  seed(dir, "default", t::texts{});
  {
    t::texts x;
    x.name = "\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8D\x84"; // été € 🍄 (16 bytes)
    x.blob = {0, 1, 2, 0xFF, 0x80, 0x7F, 0xC0, 0xFE};
    seed(dir, "full", x);
  }
  seed(dir, "default", t::collections{});
  {
    t::collections x;
    x.levels = {1.0, -0.0, 1e300};
    x.ids = {1, 2, 0xFFFFFFFF, 0};
    x.flags = {true, false, true, true};
    x.side = t::side::sell;
    seed(dir, "full", x);
  }
  {
    t::leg x;
    x.venue = "XNAS";
    x.qty = -7;
    seed(dir, "full", x);
  }
  seed(dir, "default", t::order{});
  {
    t::order x;
    x.leg.venue = "XLON";
    x.leg.qty = 100;
    x.side = t::side::buy;
    x.px = 101.25;
    seed(dir, "full", x);
  }
  seed(dir, "one", t::ping{1});
  seed(dir, "max", t::pong{UINT64_MAX});
  seed(dir, "aapl", t::price_request{"AAPL"});
  {
    t::price_reply x;
    x.symbol = "MSFT";
    x.px = 412.5;
    seed(dir, "msft", x);
  }
  seed(dir, "boom", t::fail_now{"injected failure"});
  {
    auto h = mycelium::make_hello(t::descriptor(), "node-a", "pricer", 4242);
    h.auth_proof.assign(32, 0xAB);
    std::vector<uint8_t> frame;
    w::encode_frame(frame, h, 0);
    write_file(dir, "seed-hello-full", frame);
    w::hello empty;
    frame.clear();
    w::encode_frame(frame, empty, 0);
    write_file(dir, "seed-hello-empty", frame);
  }
  {
    w::refuse r{errc::schema_mismatch, "schema digest mismatch: local 1d1e vs remote 91de"};
    std::vector<uint8_t> frame;
    w::encode_frame(frame, r, 0);
    write_file(dir, "seed-refuse-mismatch", frame);
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // Every message type of the schema must be covered by for_each_type.
  size_t covered = 0;
  for_each_type([&](auto proto) {
    using T = decltype(proto);
    if (t::descriptor().find(T::type_id) != nullptr)
      ++covered;
  });
  if (covered != t::descriptor().types.size()) {
    std::fprintf(stderr, "mycelium_fuzz_decode: the test schema has %zu message "
                         "types but for_each_type() in fuzz_decode.cpp covers %zu; "
                         "add the new types there\n",
                 t::descriptor().types.size(), covered);
    std::exit(2);
  }
  for (int i = 1; i < *argc; ++i) {
    static constexpr char flag[] = "--write-seeds=";
    if (std::strncmp((*argv)[i], flag, sizeof(flag) - 1) == 0) {
      write_seeds((*argv)[i] + sizeof(flag) - 1);
      std::exit(0);
    }
  }
  return 0;
}

/// An exact-size heap copy, so that AddressSanitizer flags any read past
/// the end of a region that is shorter than the fuzzer's input.
static std::unique_ptr<uint8_t[]> exact_copy(const uint8_t* p, size_t n) {
  std::unique_ptr<uint8_t[]> out{new uint8_t[n > 0 ? n : 1]};
  if (n > 0)
    std::memcpy(out.get(), p, n);
  return out;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
  // 1. the whole input as one frame
  w::frame_header h;
  caf::message msg;
  auto e = mycelium::decode_frame(t::descriptor(), data, n, max_payload, h, msg);
  w::frame_header ch;
  auto he = w::frame_header::read(data, n, max_payload, ch);
  if (e == errc::none) {
    if (he != errc::none)
      violation("decode_frame accepted a frame whose header does not parse", "frame", he);
    check_frame_message(h, msg);
  }
  if (he == errc::none) {
    // The declared payload alone, in a buffer of exactly that size: the
    // decoder must not look past payload_length.
    auto copy = exact_copy(data + w::frame_header::size, ch.payload_length);
    if ((ch.flags & w::frame_header::flag_control) != 0) {
      if (e != errc::unknown_type)
        violation("decode_frame did not refuse a control frame", "frame", e);
      if (ch.type_id == static_cast<uint32_t>(w::control_type::hello))
        fuzz_hello(copy.get(), ch.payload_length);
      else if (ch.type_id == static_cast<uint32_t>(w::control_type::refuse))
        fuzz_refuse(copy.get(), ch.payload_length);
    } else {
      caf::message msg2;
      auto e2 = t::descriptor().decode(ch.type_id, copy.get(), ch.payload_length, msg2);
      if (e2 != e)
        violation("decode_frame and descriptor().decode of the same payload disagree",
                  "frame", e2);
    }
  }
  // 2. the payload region as a bare payload of every type
  auto skip = n >= w::frame_header::size ? w::frame_header::size : 0;
  const uint8_t* p = data + skip;
  size_t m = n - skip;
  for_each_type([&](auto proto) { fuzz_payload<decltype(proto)>(p, m); });
  fuzz_hello(p, m);
  fuzz_refuse(p, m);
  return 0;
}
