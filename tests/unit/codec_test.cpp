// Generated C++ types: round trip of every field type, golden byte vectors
// (tests/data/golden, shared with the Python and OCaml tests), and every
// malformed-input error of the decoder.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "test_messages.hpp"
#include "tricky_names.hpp"

using namespace mycelium;
namespace t = mycelium::test;

namespace {

template <class T>
T round_trip(const T& x) {
  std::vector<uint8_t> buf;
  encode_frame(x, 1, buf);
  wire::frame_header h;
  caf::message msg;
  auto err = decode_frame(t::descriptor(), buf.data(), buf.size(), 1 << 20, h, msg);
  REQUIRE(err == errc::none);
  REQUIRE(h.type_id == T::type_id);
  REQUIRE(msg.match_element<T>(0));
  return msg.get_as<T>(0);
}

t::all_scalars extreme_scalars() {
  t::all_scalars x;
  x.a_u8 = 255;
  x.a_u16 = 65535;
  x.a_u32 = 4294967295u;
  x.a_u64 = std::numeric_limits<uint64_t>::max();
  x.a_i8 = -128;
  x.a_i16 = -32768;
  x.a_i32 = std::numeric_limits<int32_t>::min();
  x.a_i64 = std::numeric_limits<int64_t>::min();
  x.a_f32 = 1.5f;
  x.a_f64 = -2.25;
  x.a_bool = true;
  return x;
}

t::texts sample_texts() {
  t::texts x;
  x.name = "\xC3\xA9t\xC3\xA9"; // "été"
  x.blob = {0, 1, 2, 255};
  return x;
}

t::collections sample_collections() {
  t::collections x;
  x.levels = {1.0, 2.0, 3.0};
  x.ids = {1, 2, 3};
  x.flags = {true, false};
  x.side = t::side::sell;
  return x;
}

t::order sample_order() {
  t::order x;
  x.leg.venue = "XNAS";
  x.leg.qty = 100;
  x.side = t::side::buy;
  x.px = 101.25;
  return x;
}

std::vector<uint8_t> payload_of(const std::vector<uint8_t>& frame) {
  return {frame.begin() + wire::frame_header::size, frame.end()};
}

template <class T>
errc decode_bytes(const std::vector<uint8_t>& payload, T& out) {
  // exact-size heap copy: ASan flags any read past the end
  std::vector<uint8_t> copy(payload);
  return decode_payload(copy.data(), copy.size(), out);
}

/// Reads a golden .hex file: whitespace-separated hex bytes, '#' comments.
std::vector<uint8_t> read_hex(const std::string& path) {
  std::ifstream in{path};
  REQUIRE_MESSAGE(in.good(), "cannot open golden vector " << path);
  std::vector<uint8_t> out;
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream ls{line};
    std::string tok;
    while (ls >> tok)
      out.push_back(static_cast<uint8_t>(std::stoul(tok, nullptr, 16)));
  }
  return out;
}

void write_hex(const std::string& path, const std::string& comment,
               const std::vector<uint8_t>& bytes) {
  std::ofstream out{path};
  out << "# " << comment << "\n# " << bytes.size()
      << " bytes: 24-byte frame header, then the TLV payload\n";
  char tmp[4];
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::snprintf(tmp, sizeof tmp, "%02x", bytes[i]);
    out << tmp << ((i % 16 == 15 || i + 1 == bytes.size()) ? "\n" : " ");
  }
}

template <class T>
void check_golden(const std::string& name, const T& value, uint64_t seq,
                  const std::string& comment) {
  std::vector<uint8_t> buf;
  encode_frame(value, seq, buf);
  auto path = std::string{MYCELIUM_TEST_DATA_DIR} + "/golden/" + name + ".hex";
  if (std::getenv("MYCELIUM_UPDATE_GOLDEN") != nullptr)
    write_hex(path, comment, buf);
  auto expected = read_hex(path);
  CHECK_MESSAGE(buf == expected, "encoding of " << name << " differs from " << path);
  // and the golden bytes decode back to the value
  wire::frame_header h;
  caf::message msg;
  REQUIRE(decode_frame(t::descriptor(), expected.data(), expected.size(), 1 << 20,
                       h, msg) == errc::none);
  CHECK(h.sequence == seq);
  REQUIRE(msg.match_element<T>(0));
  CHECK(msg.get_as<T>(0) == value);
}

} // namespace

TEST_CASE("codec: every scalar type round-trips at its extremes") {
  auto x = extreme_scalars();
  CHECK(round_trip(x) == x);
  t::all_scalars zero;
  CHECK(round_trip(zero) == zero);
  t::all_scalars nan;
  nan.a_f64 = std::numeric_limits<double>::quiet_NaN();
  CHECK(std::isnan(round_trip(nan).a_f64));
}

TEST_CASE("codec: strings, bytes, arrays, vectors, enums, nested messages") {
  CHECK(round_trip(sample_texts()) == sample_texts());
  CHECK(round_trip(sample_collections()) == sample_collections());
  CHECK(round_trip(sample_order()) == sample_order());
  t::texts full;
  full.name = std::string(16, 'x'); // exactly at the maximum
  full.blob.assign(8, 0xAB);
  CHECK(round_trip(full) == full);
  t::collections empty_vectors;
  CHECK(round_trip(empty_vectors) == empty_vectors);
}

TEST_CASE("codec: schema defaults apply to construction and to missing fields") {
  t::order o;
  CHECK(o.side == t::side::sell);
  CHECK(o.px == 1.5);
  CHECK(o.leg.qty == 1);
  t::texts tx;
  CHECK(tx.name == "none");
  // An empty payload is a message whose fields are all missing.
  t::order decoded;
  decoded.px = 99;
  REQUIRE(decode_bytes({}, decoded) == errc::none);
  CHECK(decoded == t::order{});
}

TEST_CASE("codec: the descriptor's visit reuses one value per thread") {
  // What a link's receive path does per frame: visit, use, forget.
  auto& d = t::descriptor();
  auto payload_of = [](const t::texts& x) {
    std::vector<uint8_t> out;
    encode_payload(x, out);
    return out;
  };
  struct seen {
    t::texts value;
    const void* blob_data = nullptr;
    int calls = 0;
  };
  auto visit = [&](const std::vector<uint8_t>& payload, seen& s) {
    return d.visit(t::texts::type_id, payload.data(), payload.size(), &s,
                   [](void* ctx, uint32_t id, void* value) {
                     auto* out = static_cast<seen*>(ctx);
                     CHECK(id == t::texts::type_id);
                     auto& x = *static_cast<t::texts*>(value);
                     out->value = x;
                     out->blob_data = x.blob.data();
                     ++out->calls;
                   });
  };
  t::texts full;
  full.name = "some name";
  full.blob.assign(8, 0xAB);
  seen first, second;
  REQUIRE(visit(payload_of(full), first) == errc::none);
  REQUIRE(visit(payload_of(full), second) == errc::none);
  CHECK(first.value == full);
  CHECK(second.value == full);
  // The second frame landed in the first one's buffer: no allocation.
  CHECK(second.blob_data == first.blob_data);
  // A frame that leaves fields out gets their defaults, not the last frame's.
  seen empty;
  REQUIRE(visit({}, empty) == errc::none);
  CHECK(empty.value == t::texts{});
  CHECK(empty.value.name == "none");
  // A malformed frame calls nobody and spoils nothing for the next one.
  seen bad;
  std::vector<uint8_t> cut = payload_of(full);
  cut.pop_back();
  CHECK(visit(cut, bad) != errc::none);
  CHECK(bad.calls == 0);
  seen after;
  REQUIRE(visit(payload_of(full), after) == errc::none);
  CHECK(after.value == full);
}

TEST_CASE("codec: a visit nested in a visit of the same type gets its own value") {
  auto& d = t::descriptor();
  t::texts outer_msg, inner_msg;
  outer_msg.blob.assign(3, 1);
  inner_msg.name = "inner";
  inner_msg.blob.assign(5, 2);
  std::vector<uint8_t> outer_bytes, inner_bytes;
  encode_payload(outer_msg, outer_bytes);
  encode_payload(inner_msg, inner_bytes);
  struct ctx_t {
    const schema_descriptor* d;
    const std::vector<uint8_t>* inner;
    t::texts outer_after, inner_seen;
  } ctx{&d, &inner_bytes, {}, {}};
  auto e = d.visit(t::texts::type_id, outer_bytes.data(), outer_bytes.size(), &ctx,
                   [](void* c, uint32_t, void* value) {
                     auto* cx = static_cast<ctx_t*>(c);
                     auto& outer = *static_cast<t::texts*>(value);
                     auto ie = cx->d->visit(t::texts::type_id, cx->inner->data(),
                                            cx->inner->size(), cx,
                                            [](void* c2, uint32_t, void* v2) {
                                              static_cast<ctx_t*>(c2)->inner_seen =
                                                *static_cast<t::texts*>(v2);
                                            });
                     CHECK(ie == errc::none);
                     cx->outer_after = outer; // untouched by the nested decode
                   });
  REQUIRE(e == errc::none);
  CHECK(ctx.outer_after == outer_msg);
  CHECK(ctx.inner_seen == inner_msg);
}

TEST_CASE("codec: unknown fields from a newer schema are skipped") {
  std::vector<uint8_t> payload;
  wire::writer w{payload};
  w.scalar<uint64_t>(1, 77);
  w.string(200, "added later");
  w.scalar<uint32_t>(201, 5);
  t::ping p;
  REQUIRE(decode_bytes(payload, p) == errc::none);
  CHECK(p.seq == 77);
}

TEST_CASE("codec: golden byte vectors") {
  check_golden("all_scalars", extreme_scalars(), 1,
               "all_scalars (type 1): extremes of every scalar, f32 1.5, f64 -2.25, bool true");
  check_golden("texts", sample_texts(), 2,
               "texts (type 2): name \"\xC3\xA9t\xC3\xA9\", blob 00 01 02 ff");
  check_golden("collections", sample_collections(), 3,
               "collections (type 3): levels [1,2,3], ids [1,2,3], flags [true,false], side sell");
  check_golden("order", sample_order(), 1,
               "order (type 5): leg {venue XNAS, qty 100}, side buy, px 101.25");
  check_golden("order_defaults", t::order{}, 4,
               "order (type 5): every field at its default");
}

TEST_CASE("codec: the order golden vector matches the hand-computed bytes") {
  // Independent of the encoder: the bytes docs/wire-protocol.md walks through.
  const std::vector<uint8_t> expected{
    // header: payload length 38, type 5, sequence 1, flags 0, reserved 0
    0x26, 0, 0, 0, 0x05, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    // field 1 (leg), sized, 16 bytes
    0x0C, 0x00, 0x10, 0x00, 0x00, 0x00,
    //   field 1 (venue), sized, 4 bytes "XNAS"
    0x0C, 0x00, 0x04, 0x00, 0x00, 0x00, 'X', 'N', 'A', 'S',
    //   field 2 (qty), fixed32, 100
    0x12, 0x00, 0x64, 0x00, 0x00, 0x00,
    // field 2 (side), fixed32, buy = 1
    0x12, 0x00, 0x01, 0x00, 0x00, 0x00,
    // field 3 (px), fixed64, 101.25
    0x1B, 0x00, 0, 0, 0, 0, 0, 0x50, 0x59, 0x40,
  };
  std::vector<uint8_t> buf;
  encode_frame(sample_order(), 1, buf);
  CHECK(buf == expected);
}

TEST_CASE("codec: every malformed input yields its specific error") {
  auto frame = [](const auto& x) {
    std::vector<uint8_t> buf;
    encode_frame(x, 1, buf);
    return buf;
  };
  SUBCASE("unknown type id") {
    auto buf = frame(t::ping{});
    buf[4] = 0x63; // type 99
    wire::frame_header h;
    caf::message msg;
    CHECK(decode_frame(t::descriptor(), buf.data(), buf.size(), 1 << 20, h, msg)
          == errc::unknown_type);
  }
  SUBCASE("payload over the configured maximum") {
    auto buf = frame(sample_texts());
    wire::frame_header h;
    caf::message msg;
    CHECK(decode_frame(t::descriptor(), buf.data(), buf.size(), 8, h, msg)
          == errc::frame_too_large);
  }
  SUBCASE("every truncation point of every sample") {
    for (auto& buf : {frame(extreme_scalars()), frame(sample_texts()),
                      frame(sample_collections()), frame(sample_order())}) {
      for (size_t n = 0; n < buf.size(); ++n) {
        std::vector<uint8_t> cut(buf.begin(), buf.begin() + n);
        wire::frame_header h;
        caf::message msg;
        CHECK(decode_frame(t::descriptor(), cut.data(), cut.size(), 1 << 20, h, msg)
              == errc::truncated);
      }
      // A payload cut at a field boundary is a valid message whose later
      // fields are missing; cut anywhere else it must be refused.
      auto payload = payload_of(buf);
      std::set<size_t> boundaries{0};
      wire::reader walk{payload.data(), payload.size()};
      while (!walk.at_end()) {
        uint16_t fid = 0;
        wire::wire_type wt{};
        REQUIRE(walk.tag(fid, wt) == errc::none);
        REQUIRE(walk.skip(wt) == errc::none);
        boundaries.insert(payload.size() - walk.remaining());
      }
      for (size_t n = 0; n < payload.size(); ++n) {
        std::vector<uint8_t> cut(payload.begin(), payload.begin() + n);
        caf::message msg;
        auto e = t::descriptor().decode(buf[4], cut.data(), cut.size(), msg);
        if (boundaries.count(n))
          CHECK(e == errc::none);
        else
          CHECK(e == errc::truncated);
      }
    }
  }
  SUBCASE("bad enum value") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.scalar<uint32_t>(4, 3); // side has 1 and 2
    t::collections c;
    CHECK(decode_bytes(p, c) == errc::bad_enum_value);
  }
  SUBCASE("bool other than 0 or 1") {
    std::vector<uint8_t> p{0x58, 0x00, 0x02}; // field 11, fixed8, 2
    t::all_scalars s;
    CHECK(decode_bytes(p, s) == errc::bad_bool);
  }
  SUBCASE("string over its maximum") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.string(1, std::string(17, 'x'));
    t::texts x;
    CHECK(decode_bytes(p, x) == errc::string_too_long);
  }
  SUBCASE("invalid utf-8") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.string(1, "\xC0\xAF");
    t::texts x;
    CHECK(decode_bytes(p, x) == errc::invalid_utf8);
  }
  SUBCASE("bytes over their maximum") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.bytes(2, std::vector<uint8_t>(9, 1));
    t::texts x;
    CHECK(decode_bytes(p, x) == errc::bytes_too_long);
  }
  SUBCASE("vector over its maximum") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.packed(2, std::vector<uint32_t>{1, 2, 3, 4, 5});
    t::collections x;
    CHECK(decode_bytes(p, x) == errc::vector_too_long);
  }
  SUBCASE("vector length not a multiple of the element size") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.sized(2, "\x01\x02\x03\x04\x05", 5);
    t::collections x;
    CHECK(decode_bytes(p, x) == errc::bad_vector_length);
  }
  SUBCASE("bool vector element other than 0 or 1") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.sized(3, "\x01\x07", 2);
    t::collections x;
    CHECK(decode_bytes(p, x) == errc::bad_bool);
  }
  SUBCASE("fixed array with the wrong element count") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.packed(1, std::vector<double>{1, 2});
    t::collections x;
    CHECK(decode_bytes(p, x) == errc::array_length_mismatch);
  }
  SUBCASE("duplicate field") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.scalar<uint64_t>(1, 1);
    w.scalar<uint64_t>(1, 2);
    t::ping x;
    CHECK(decode_bytes(p, x) == errc::duplicate_field);
  }
  SUBCASE("wire type that does not match the schema") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    w.scalar<uint32_t>(1, 1); // seq is u64
    t::ping x;
    CHECK(decode_bytes(p, x) == errc::bad_wire_type);
    std::vector<uint8_t> q;
    wire::writer w2{q};
    w2.scalar<uint8_t>(1, 1); // leg is a nested message
    t::order o;
    CHECK(decode_bytes(q, o) == errc::bad_wire_type);
  }
  SUBCASE("errors inside a nested message surface") {
    std::vector<uint8_t> p;
    wire::writer w{p};
    auto mark = w.begin_sized(1);
    w.string(1, std::string(9, 'v')); // venue max is 8
    w.end_sized(mark);
    t::order o;
    CHECK(decode_bytes(p, o) == errc::string_too_long);
  }
  SUBCASE("field id zero and reserved wire types") {
    t::ping x;
    CHECK(decode_bytes({0x03, 0x00}, x) == errc::bad_field_id);
    CHECK(decode_bytes({0x0D, 0x00}, x) == errc::bad_wire_type);
  }
}

TEST_CASE("codec: the descriptor announces every type with its digest") {
  auto& d = t::descriptor();
  CHECK(d.package == "mycelium.test");
  CHECK(d.digest == t::schema_digest);
  REQUIRE(d.find(5) != nullptr);
  CHECK(d.find(5)->name == "order");
  CHECK(d.find(5)->digest == t::order::digest);
  CHECK(d.find(99) == nullptr);
  std::vector<uint8_t> out;
  uint32_t id = 0;
  CHECK(d.encode(caf::make_message(sample_order()), out, id));
  CHECK(id == 5);
  CHECK_FALSE(d.encode(caf::make_message(42), out, id));
  auto h = make_hello(d, "n", "s", 1);
  CHECK(h.types.size() == d.types.size());
}

TEST_CASE("codec: hostile field and value names generate working code") {
  namespace k = mycelium::tricky;
  k::holder h;
  CHECK(h.kind == k::kind::int_);
  CHECK(h.type_id_ == 2.0f);
  CHECK(h.nested.inner_ == std::numeric_limits<int64_t>::min()); // named like its message
  h.other = 1;
  h.uint32_t = 2;
  h.class_ = "x";
  h.kind = k::kind::class_;
  std::vector<uint8_t> buf;
  encode_frame(h, 1, buf);
  wire::frame_header fh;
  caf::message msg;
  REQUIRE(decode_frame(k::descriptor(), buf.data(), buf.size(), 1024, fh, msg)
          == errc::none);
  CHECK(msg.get_as<k::holder>(0) == h);
  CHECK(k::holder::type_id == 1);
}
