// libFuzzer target mycelium_fuzz_decode: arbitrary bytes into every decoder
// a link runs on untrusted input, with a round-trip property on success.
//
// Each input is used twice:
//  1. as a whole frame: mycelium::decode_frame() with the test schema
//     (tests/schemas/test_messages.toml); control frames of type hello /
//     refuse / auth go to wire::decode(.., hello&) / (.., refuse&) / (.., auth&);
//  2. as a bare payload (the bytes after the 24-byte header, or all bytes of
//     a shorter input): decode_payload<T>() for every message type T of the
//     schema, and wire::decode() for hello, refuse and auth.
//
// Whenever a decode succeeds, the value is re-encoded, the re-encoded bytes
// must decode again (through the same path and through the frame path), and
// the result must equal the first value: same canonical encoding and
// operator== (operator== only where the value is not NaN-bearing, since
// NaN != NaN). Any violation prints what happened and calls abort(), which
// libFuzzer reports as a crash together with the reproducer file.
//
// The link protocol on top of these decoders (handshake state, sequence
// numbers, interest frames, reassembly) is fuzzed by fuzz_link.cpp.
//
// Extra mode: `mycelium_fuzz_decode --write-seeds=DIR` writes the seed
// corpus (valid frames of every type) to DIR and exits; libFuzzer ignores
// flags that start with "--".

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.hpp"

namespace w = mycelium::wire;
namespace t = mycelium::test;
using mycelium::errc;
using mycelium::fuzz::exact_copy;
using mycelium::fuzz::for_each_type;
using mycelium::fuzz::hex;
using mycelium::fuzz::payload_of;
using mycelium::fuzz::same;

namespace {

[[noreturn]] void violation(const char* what, const char* type, errc e = errc::none) {
  std::fprintf(stderr, "mycelium_fuzz_decode: ROUND-TRIP VIOLATION (%s): %s [%s]\n",
               type, what, mycelium::to_string(e));
  std::abort();
}

constexpr uint32_t max_payload = w::default_max_payload;

// -- generated message types --------------------------------------------------

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

void fuzz_auth(const uint8_t* p, size_t n) {
  w::auth v;
  if (w::decode(p, n, v) == errc::none)
    check_control(v, w::control_type::auth, "auth");
}

// -- seed corpus --------------------------------------------------------------

void write_file(const std::string& dir, const std::string& name,
                const std::vector<uint8_t>& bytes) {
  mycelium::fuzz::write_file("mycelium_fuzz_decode", dir, name, bytes);
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
    h.auth_proof.assign(32, 0xAB); // retired field: still decoded and kept
    h.auth_scheme_id = static_cast<uint8_t>(w::auth_scheme::hmac_sha256);
    for (size_t i = 0; i < h.nonce.size(); ++i)
      h.nonce[i] = static_cast<uint8_t>(i + 1);
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
  {
    w::auth a;
    for (size_t i = 0; i < a.proof.size(); ++i)
      a.proof[i] = static_cast<uint8_t>(0x40 + i);
    std::vector<uint8_t> frame;
    w::encode_frame(frame, a, 0);
    write_file(dir, "seed-auth", frame);
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  mycelium::fuzz::require_all_types_covered("mycelium_fuzz_decode");
  if (auto dir = mycelium::fuzz::flag_value(*argc, *argv, "write-seeds")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
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
      else if (ch.type_id == static_cast<uint32_t>(w::control_type::auth))
        fuzz_auth(copy.get(), ch.payload_length);
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
  fuzz_auth(p, m);
  return 0;
}
