// Frame header, TLV primitives, UTF-8 validation and the handshake.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include "mycelium/wire/frame_header.hpp"
#include "mycelium/wire/handshake.hpp"
#include "mycelium/wire/tlv.hpp"

using namespace mycelium;
using namespace mycelium::wire;

TEST_CASE("frame header: layout is little-endian and round-trips") {
  frame_header h;
  h.payload_length = 0x01020304;
  h.type_id = 0x0A0B0C0D;
  h.sequence = 0x1122334455667788ull;
  h.flags = frame_header::flag_control;
  uint8_t buf[frame_header::size + 0x10] = {};
  h.write(buf);
  const uint8_t expect[24] = {0x04, 0x03, 0x02, 0x01, 0x0D, 0x0C, 0x0B, 0x0A,
                              0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                              0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  CHECK(std::memcmp(buf, expect, 24) == 0);
  frame_header back;
  // payload_length is large, so claim enough bytes to pass the size check
  CHECK(frame_header::read(buf, 24, 0xFFFFFFFF, back) == errc::truncated);
  h.payload_length = 16;
  h.write(buf);
  REQUIRE(frame_header::read(buf, sizeof buf, 1024, back) == errc::none);
  CHECK(back.payload_length == 16);
  CHECK(back.type_id == h.type_id);
  CHECK(back.sequence == h.sequence);
  CHECK(back.flags == h.flags);
}

TEST_CASE("frame header: every malformed header is refused") {
  frame_header h;
  h.payload_length = 8;
  h.type_id = 1;
  h.sequence = 1;
  uint8_t buf[32] = {};
  h.write(buf);
  frame_header out;
  CHECK(frame_header::read(buf, 23, 1024, out) == errc::truncated);
  CHECK(frame_header::read(buf, 31, 1024, out) == errc::truncated);
  CHECK(frame_header::read(buf, 32, 1024, out) == errc::none);
  CHECK(frame_header::read(buf, 32, 7, out) == errc::frame_too_large);
  auto flip = [&](size_t off) {
    uint8_t copy[32];
    std::memcpy(copy, buf, 32);
    copy[off] = 0x80;
    return frame_header::read(copy, 32, 1024, out);
  };
  CHECK(flip(17) == errc::bad_frame_header); // unknown flag bit
  CHECK(flip(18) == errc::bad_frame_header); // reserved0
  CHECK(flip(21) == errc::bad_frame_header); // reserved1
}

TEST_CASE("tlv: tags encode field id and wire type") {
  CHECK(make_tag(1, wire_type::sized) == 0x000C);
  CHECK(make_tag(max_field_id, wire_type::fixed64) == 0xFFFB);
  std::vector<uint8_t> buf;
  writer w{buf};
  w.scalar<uint8_t>(1, 7);
  w.scalar<int16_t>(2, -2);
  w.scalar<float>(3, 1.0f);
  w.scalar<double>(4, -0.5);
  const std::vector<uint8_t> expect{
    0x08, 0x00, 0x07,                         // field 1, fixed8
    0x11, 0x00, 0xFE, 0xFF,                   // field 2, fixed16, -2
    0x1A, 0x00, 0x00, 0x00, 0x80, 0x3F,       // field 3, fixed32, 1.0f
    0x23, 0x00, 0, 0, 0, 0, 0, 0, 0xE0, 0xBF, // field 4, fixed64, -0.5
  };
  CHECK(buf == expect);
  reader r{buf.data(), buf.size()};
  uint16_t f;
  wire_type wt{};
  uint8_t a;
  int16_t b;
  float c;
  double d;
  REQUIRE(r.tag(f, wt) == errc::none);
  CHECK(r.scalar(wt, a) == errc::none);
  REQUIRE(r.tag(f, wt) == errc::none);
  CHECK(r.scalar(wt, b) == errc::none);
  REQUIRE(r.tag(f, wt) == errc::none);
  CHECK(r.scalar(wt, c) == errc::none);
  REQUIRE(r.tag(f, wt) == errc::none);
  CHECK(r.scalar(wt, d) == errc::none);
  CHECK(r.at_end());
  CHECK(a == 7);
  CHECK(b == -2);
  CHECK(c == 1.0f);
  CHECK(d == -0.5);
}

TEST_CASE("tlv: reader refuses bad tags, wrong wire types and truncation") {
  uint16_t f;
  wire_type wt{};
  {
    const uint8_t bad[] = {0x0F, 0x00}; // wire type 7
    reader r{bad, 2};
    CHECK(r.tag(f, wt) == errc::bad_wire_type);
  }
  {
    const uint8_t zero[] = {0x00, 0x00}; // field id 0
    reader r{zero, 2};
    CHECK(r.tag(f, wt) == errc::bad_field_id);
  }
  {
    const uint8_t one[] = {0x08};
    reader r{one, 1};
    CHECK(r.tag(f, wt) == errc::truncated);
  }
  {
    const uint8_t data[] = {0x0B, 0x00, 1, 2, 3}; // fixed64 with 3 bytes
    reader r{data, sizeof data};
    REQUIRE(r.tag(f, wt) == errc::none);
    uint64_t x;
    CHECK(r.scalar(wt, x) == errc::truncated);
  }
  {
    const uint8_t data[] = {0x0A, 0x00, 1, 2, 3, 4}; // fixed32 read as u64
    reader r{data, sizeof data};
    REQUIRE(r.tag(f, wt) == errc::none);
    uint64_t x;
    CHECK(r.scalar(wt, x) == errc::bad_wire_type);
  }
  {
    const uint8_t data[] = {0x0C, 0x00, 0xFF, 0xFF, 0xFF, 0x7F, 'a'}; // huge length
    reader r{data, sizeof data};
    REQUIRE(r.tag(f, wt) == errc::none);
    std::string s;
    CHECK(r.string(wt, 100, s) == errc::truncated);
  }
  {
    const uint8_t data[] = {0x08, 0x00, 2}; // bool 2
    reader r{data, sizeof data};
    REQUIRE(r.tag(f, wt) == errc::none);
    bool b;
    CHECK(r.scalar(wt, b) == errc::bad_bool);
  }
}

TEST_CASE("tlv: unknown fields of every wire type are skipped") {
  std::vector<uint8_t> buf;
  writer w{buf};
  w.scalar<uint8_t>(9, 1);
  w.scalar<uint16_t>(9, 1);
  w.scalar<uint32_t>(9, 1);
  w.scalar<uint64_t>(9, 1);
  w.string(9, "skip me");
  reader r{buf.data(), buf.size()};
  int fields = 0;
  while (!r.at_end()) {
    uint16_t f;
    wire_type wt{};
    REQUIRE(r.tag(f, wt) == errc::none);
    REQUIRE(r.skip(wt) == errc::none);
    ++fields;
  }
  CHECK(fields == 5);
}

TEST_CASE("utf8 validation") {
  auto ok = [](const std::string& s) {
    return valid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  CHECK(ok(""));
  CHECK(ok("plain ascii"));
  CHECK(ok("\xC3\xA9t\xC3\xA9"));       // été
  CHECK(ok("\xE2\x82\xAC"));            // €
  CHECK(ok("\xF0\x9F\x8D\x84"));        // mushroom
  CHECK_FALSE(ok("\xC3"));              // cut short
  CHECK_FALSE(ok("\xC0\xAF"));          // overlong
  CHECK_FALSE(ok("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(ok("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(ok("\xFF"));
}

namespace {

hello sample_hello(uint8_t digest_byte) {
  hello h;
  h.schema_digest.fill(digest_byte);
  h.node = "node-a";
  h.service = "ticker";
  h.pid = 4242;
  h.types = {{1, "quote", {}}, {2, "order", {}}};
  h.types[0].digest.fill(1);
  h.types[1].digest.fill(2);
  return h;
}

} // namespace

TEST_CASE("handshake: hello and refuse round-trip through frames") {
  auto h = sample_hello(7);
  h.auth_proof = {1, 2, 3};
  std::vector<uint8_t> buf;
  encode_frame(buf, h, 1);
  frame_header fh;
  REQUIRE(frame_header::read(buf.data(), buf.size(), 65536, fh) == errc::none);
  CHECK(fh.type_id == static_cast<uint32_t>(control_type::hello));
  CHECK(fh.flags == frame_header::flag_control);
  CHECK(buf[24 + 2] == 0x4D); // "MYCL" magic bytes right after the tag
  hello back;
  REQUIRE(decode(buf.data() + 24, fh.payload_length, back) == errc::none);
  CHECK(back.node == "node-a");
  CHECK(back.service == "ticker");
  CHECK(back.pid == 4242);
  CHECK(back.schema_digest == h.schema_digest);
  CHECK(back.auth_proof == h.auth_proof);
  REQUIRE(back.types.size() == 2);
  CHECK(back.types[1].name == "order");
  CHECK(back.types[1].digest == h.types[1].digest);

  refuse r{errc::schema_mismatch, "because"};
  buf.clear();
  encode_frame(buf, r, 2);
  REQUIRE(frame_header::read(buf.data(), buf.size(), 65536, fh) == errc::none);
  refuse rb;
  REQUIRE(decode(buf.data() + 24, fh.payload_length, rb) == errc::none);
  CHECK(rb.reason == errc::schema_mismatch);
  CHECK(rb.text == "because");
}

TEST_CASE("handshake: over-long texts are cut on a UTF-8 boundary, never refused") {
  auto h = sample_hello(1);
  h.node.clear();
  for (int i = 0; i < 200; ++i)
    h.node += "\xC3\xA9"; // 400 bytes of two-byte characters, limit 255
  std::vector<uint8_t> buf;
  encode_frame(buf, h, 1);
  hello back;
  REQUIRE(decode(buf.data() + 24, buf.size() - 24, back) == errc::none);
  CHECK(back.node.size() == 254);
  refuse r{errc::schema_mismatch, std::string(5000, 'x') + "\xE2\x82\xAC"};
  buf.clear();
  encode_frame(buf, r, 1);
  refuse rb;
  CHECK(decode(buf.data() + 24, buf.size() - 24, rb) == errc::none);
}

TEST_CASE("handshake: truncated hello payloads are refused, never read past") {
  auto h = sample_hello(7);
  std::vector<uint8_t> buf;
  encode_frame(buf, h, 1);
  auto payload = std::vector<uint8_t>(buf.begin() + 24, buf.end());
  for (size_t n = 0; n < payload.size(); ++n) {
    // copy into an exact-size heap buffer so ASan sees any over-read
    std::vector<uint8_t> cut(payload.begin(), payload.begin() + n);
    hello out;
    CHECK(decode(cut.data(), cut.size(), out) != errc::none);
  }
}

TEST_CASE("handshake: digest mismatch names both digests and the first differing type") {
  auto local = sample_hello(7);
  auto remote = sample_hello(9);
  remote.node = "node-b";
  CHECK(check_hello(local, local).reason == errc::none);
  remote.types[1].digest.fill(3); // 'order' differs, 'quote' is equal
  auto r = check_hello(local, remote);
  CHECK(r.reason == errc::schema_mismatch);
  CHECK(r.text.find(to_hex(local.schema_digest)) != std::string::npos);
  CHECK(r.text.find(to_hex(remote.schema_digest)) != std::string::npos);
  CHECK(r.text.find("order (id 2)") != std::string::npos);
  CHECK(r.text.find("node-b") != std::string::npos);
  remote.types.pop_back();
  CHECK(check_hello(local, remote).text.find("order (id 2) exists only locally")
        != std::string::npos);
  remote.version = 99;
  CHECK(check_hello(local, remote).reason == errc::version_mismatch);
  remote.magic = 1;
  CHECK(check_hello(local, remote).reason == errc::bad_magic);
}

TEST_CASE("handshake: nonce and auth scheme fields of docs/wire-protocol.md section 7.1") {
  auto h = sample_hello(7);
  for (uint8_t i = 0; i < 16; ++i)
    h.nonce[i] = static_cast<uint8_t>(0xA0 + i);
  std::vector<uint8_t> plain;
  encode_frame(plain, h, 1);
  // Without a secret the hello ends with field 9 (tag 4C 00, L = 16, nonce):
  // no field 10, the same bytes as before challenge-response existed.
  std::vector<uint8_t> tail{0x4c, 0x00, 0x10, 0x00, 0x00, 0x00};
  for (uint8_t i = 0; i < 16; ++i)
    tail.push_back(static_cast<uint8_t>(0xA0 + i));
  REQUIRE(plain.size() > tail.size());
  CHECK(std::vector<uint8_t>(plain.end() - static_cast<long>(tail.size()), plain.end())
        == tail);
  // With a secret, field 10 (tag 50 00, fixed8) = 1 follows.
  h.auth_scheme_id = static_cast<uint8_t>(auth_scheme::hmac_sha256);
  std::vector<uint8_t> with;
  encode_frame(with, h, 1);
  REQUIRE(with.size() == plain.size() + 3);
  CHECK(with[with.size() - 3] == 0x50);
  CHECK(with[with.size() - 2] == 0x00);
  CHECK(with[with.size() - 1] == 0x01);
  hello back;
  REQUIRE(decode(with.data() + 24, with.size() - 24, back) == errc::none);
  CHECK(back.nonce == h.nonce);
  CHECK(back.auth_scheme_id == 1);
  hello back_plain;
  REQUIRE(decode(plain.data() + 24, plain.size() - 24, back_plain) == errc::none);
  CHECK(back_plain.auth_scheme_id == 0);
  // Field 10 with another wire type is refused like any typed field.
  with[with.size() - 3] = 0x52; // field 10, fixed32
  CHECK(decode(with.data() + 24, with.size() - 24, back) != errc::none);
}

TEST_CASE("handshake: a refusal with an unknown reason decodes and keeps the number") {
  std::vector<uint8_t> buf;
  encode_frame(buf, refuse{static_cast<errc>(36), "from the future"}, 2);
  refuse r;
  REQUIRE(decode(buf.data() + 24, buf.size() - 24, r) == errc::none);
  CHECK(r.code == 36);
  CHECK(static_cast<uint8_t>(r.reason) == 36);
  CHECK_FALSE(is_known(r.reason));
  CHECK(reason_name(r) == "unknown code 36");
  CHECK(r.text == "from the future");
  // A known one names itself.
  buf.clear();
  encode_frame(buf, refuse{errc::schema_mismatch, "x"}, 2);
  refuse k;
  REQUIRE(decode(buf.data() + 24, buf.size() - 24, k) == errc::none);
  CHECK(k.code == 18);
  CHECK(reason_name(k) == "schema_mismatch");
  CHECK(reason_name(refuse{errc::auth_failed, ""}) == "auth_failed");
}

namespace {

/// docs/wire-protocol.md, the file the tables below are checked against.
std::string wire_protocol_doc() {
  std::string path = std::string{MYCELIUM_TEST_DATA_DIR} + "/../../docs/wire-protocol.md";
  FILE* f = std::fopen(path.c_str(), "rb");
  REQUIRE_MESSAGE(f != nullptr, "cannot open " << path);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    text.append(buf, n);
  std::fclose(f);
  return text;
}

/// The rows "| <number> | `<name>` | ..." of the markdown table that follows
/// the line starting with `heading`.
std::vector<std::pair<std::string, std::string>>
table_after(const std::string& doc, const std::string& heading) {
  std::vector<std::pair<std::string, std::string>> rows;
  auto at = doc.find("\n" + heading);
  REQUIRE_MESSAGE(at != std::string::npos, "no heading " << heading);
  auto pos = doc.find("\n|", at);
  while (pos != std::string::npos) {
    auto end = doc.find('\n', pos + 1);
    auto line = doc.substr(pos + 1, end - pos - 1);
    if (line.empty() || line[0] != '|')
      break;
    // "| a | `b` | ..." -> a, b
    auto c1 = line.find('|', 1);
    auto first = line.substr(1, c1 - 1);
    auto b1 = line.find('`', c1);
    auto b2 = b1 == std::string::npos ? b1 : line.find('`', b1 + 1);
    auto trim = [](std::string s) {
      while (!s.empty() && s.front() == ' ')
        s.erase(s.begin());
      while (!s.empty() && s.back() == ' ')
        s.pop_back();
      return s;
    };
    if (b2 != std::string::npos && line.find('|', c1 + 1) > b2)
      rows.emplace_back(trim(first), line.substr(b1 + 1, b2 - b1 - 1));
    pos = end;
  }
  return rows;
}

} // namespace

TEST_CASE("errc: every value is pinned and the table of docs/wire-protocol.md 4.1 matches") {
  auto rows = table_after(wire_protocol_doc(), "### 4.1 Error codes");
  // Every enumerator 0..errc_last, in order, with its name.
  REQUIRE(rows.size() == static_cast<size_t>(errc_last) + 1);
  for (size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    CHECK(rows[i].first == std::to_string(i));
    CHECK(rows[i].second == to_string(static_cast<errc>(i)));
  }
  // Numbers without an enumerator render as unknown codes.
  CHECK(std::string{to_string(static_cast<errc>(static_cast<uint8_t>(errc_last) + 1))}
        == "unknown code " + std::to_string(static_cast<int>(errc_last) + 1));
  CHECK(std::string{to_string(static_cast<errc>(200))} == "unknown code 200");
  CHECK(std::string{to_string(errc_unrepresentable)} == "unknown code 255 or above");
  CHECK(is_known(errc_last));
  CHECK_FALSE(is_known(errc_unrepresentable));
}

TEST_CASE("control types: the table of docs/wire-protocol.md 1.2 matches the enum") {
  auto rows = table_after(wire_protocol_doc(), "Control type ids defined");
  const std::vector<std::pair<control_type, std::string>> expected{
    {control_type::hello, "hello"},           {control_type::refuse, "refuse"},
    {control_type::subscribe, "subscribe"},   {control_type::unsubscribe, "unsubscribe"},
    {control_type::heartbeat, "heartbeat"},   {control_type::goodbye, "goodbye"},
    {control_type::shm_attach, "shm_attach"}, {control_type::auth, "auth"},
  };
  REQUIRE(rows.size() == expected.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "`0x%08X`", static_cast<uint32_t>(expected[i].first));
    CHECK(rows[i].first == hex);
    CHECK(rows[i].second == expected[i].second);
  }
}

TEST_CASE("tlv writer: a span is filled in place and never written past") {
  std::vector<uint8_t> expected;
  {
    writer w{expected};
    w.scalar(1, uint32_t{7});
    w.string(2, std::string{"hello"});
  }
  std::vector<uint8_t> span(expected.size() + 4, 0xEE);
  {
    writer w{span.data(), expected.size()};
    w.scalar(1, uint32_t{7});
    w.string(2, std::string{"hello"});
    CHECK_FALSE(w.overflowed());
    CHECK(w.size() == expected.size());
  }
  CHECK(std::equal(expected.begin(), expected.end(), span.begin()));
  CHECK(span[expected.size()] == 0xEE); // the guard bytes are untouched
  std::vector<uint8_t> small(8, 0xEE);
  writer w{small.data(), 6};
  w.scalar(1, uint32_t{7});     // 6 bytes: fits exactly
  w.string(2, std::string{"hello"}); // does not fit
  CHECK(w.overflowed());
  CHECK(w.size() == expected.size()); // still says what it needed
  CHECK(small[6] == 0xEE);
  CHECK(small[7] == 0xEE);
}
