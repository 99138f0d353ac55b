// The transport-independent link protocol, driven without any I/O: two
// instances feed each other's bytes (in any split). Handshake, auth,
// interest, data, and every way a byte stream can go wrong.
#include <doctest/doctest.h>

#include <caf/all.hpp>

#include "link_test.hpp"
#include "mycelium/transports/auth.hpp"
#include "mycelium/transports/link_protocol.hpp"
#include "mycelium/wire/frame_header.hpp"
#include "test_messages.hpp"

using namespace mycelium;
using namespace mycelium::transports;
namespace lt = mycelium::linktest;

namespace {

/// Records what the protocol reports.
struct recorder : link_protocol::listener {
  bool established = false;
  std::vector<wire::refuse> refusing;
  std::vector<wire::refuse> refused;
  std::vector<std::pair<uint32_t, bool>> interest;
  std::vector<caf::message> data;
  std::vector<errc> bad_frames;
  bool goodbye = false;
  std::vector<std::pair<errc, std::string>> errors;

  void on_established(const wire::hello&) override { established = true; }
  void on_refusing(const wire::refuse& r) override { refusing.push_back(r); }
  void on_refused(const wire::refuse& r) override { refused.push_back(r); }
  void on_interest(uint32_t id, bool add) override { interest.emplace_back(id, add); }
  void on_data(uint32_t, caf::message m) override { data.push_back(std::move(m)); }
  void on_bad_frame(errc e, const std::string&) override { bad_frames.push_back(e); }
  void on_goodbye() override { goodbye = true; }
  void on_error(errc e, const std::string& t) override { errors.emplace_back(e, t); }
};

/// One side: protocol, listener and the bytes it wants to send.
struct side {
  link_protocol proto;
  recorder rec;
  std::vector<uint8_t> out;

  side(const schema_descriptor& d, std::string name, std::string secret = {},
       uint32_t max_payload = 1 << 20)
    : proto(d, link_identity{std::move(name), "svc", 7}, std::move(secret),
            max_payload) {
    proto.start(out);
  }
};

/// Moves `from.out` into `to`, `chunk` bytes per consume call.
bool pump(side& from, side& to, size_t chunk = 1 << 30) {
  auto bytes = std::move(from.out);
  from.out.clear();
  bool ok = true;
  for (size_t i = 0; i < bytes.size() && ok; i += chunk) {
    auto n = std::min(chunk, bytes.size() - i);
    ok = to.proto.consume(bytes.data() + i, n, to.out, to.rec);
  }
  return ok;
}

void handshake(side& a, side& b, size_t chunk = 1 << 30) {
  REQUIRE(pump(a, b, chunk)); // a's hello
  REQUIRE(pump(b, a, chunk)); // b's hello (and, with a secret, b's auth)
  if (!a.out.empty())
    REQUIRE(pump(a, b, chunk)); // a's auth
  REQUIRE(a.rec.established);
  REQUIRE(b.rec.established);
}

/// The frames in `bytes` (complete ones), as headers and payloads.
std::vector<std::pair<wire::frame_header, std::vector<uint8_t>>>
frames_of(const std::vector<uint8_t>& bytes) {
  std::vector<std::pair<wire::frame_header, std::vector<uint8_t>>> out;
  size_t off = 0;
  wire::frame_header h;
  while (wire::frame_header::read(bytes.data() + off, bytes.size() - off, 1 << 20, h)
         == errc::none) {
    auto* p = bytes.data() + off + wire::frame_header::size;
    out.emplace_back(h, std::vector<uint8_t>(p, p + h.payload_length));
    off += wire::frame_header::size + h.payload_length;
  }
  REQUIRE(off == bytes.size());
  return out;
}

/// The refusal that `bytes` end with.
wire::refuse last_refusal(const std::vector<uint8_t>& bytes) {
  auto frames = frames_of(bytes);
  REQUIRE_FALSE(frames.empty());
  auto& [h, payload] = frames.back();
  REQUIRE(h.type_id == static_cast<uint32_t>(wire::control_type::refuse));
  wire::refuse r;
  REQUIRE(wire::decode(payload.data(), payload.size(), r) == errc::none);
  return r;
}

/// A hello of the link test schema as a peer would send it.
wire::hello peer_hello(const char* node, uint8_t nonce_byte, bool auth) {
  auto h = make_hello(lt::descriptor(), node, "svc", 9);
  h.nonce.fill(nonce_byte);
  if (auth)
    h.auth_scheme_id = static_cast<uint8_t>(wire::auth_scheme::hmac_sha256);
  return h;
}

} // namespace

TEST_CASE("link protocol: handshake, interest and data in any byte split") {
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{24}, size_t{1} << 30}) {
    CAPTURE(chunk);
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    handshake(a, b, chunk);
    a.proto.write_interest(lt::ping::type_id, true, a.out);
    a.proto.write_heartbeat(a.out);
    REQUIRE(b.proto.write_data(caf::make_message(lt::ping{5, {1, 2, 3}}), b.out)
            == errc::none);
    REQUIRE(b.proto.write_data(caf::make_message(lt::empty{}), b.out) == errc::none);
    a.proto.write_interest(lt::ping::type_id, false, a.out);
    REQUIRE(pump(a, b, chunk));
    REQUIRE(pump(b, a, chunk));
    CHECK(b.rec.interest
          == std::vector<std::pair<uint32_t, bool>>{{lt::ping::type_id, true},
                                                    {lt::ping::type_id, false}});
    REQUIRE(a.rec.data.size() == 2);
    CHECK(a.rec.data[0].get_as<lt::ping>(0).seq == 5);
    CHECK(a.rec.data[0].get_as<lt::ping>(0).payload == std::vector<uint8_t>{1, 2, 3});
    CHECK(a.rec.data[1].match_element<lt::empty>(0));
    CHECK(a.rec.errors.empty());
    CHECK(b.rec.errors.empty());
  }
}

TEST_CASE("link protocol: different schemas are refused on both sides, naming both digests") {
  side a{lt::descriptor(), "a"};
  side b{mycelium::test::descriptor(), "b"};
  CHECK_FALSE(pump(a, b));
  CHECK_FALSE(pump(b, a));
  REQUIRE(a.rec.refusing.size() == 1);
  REQUIRE(b.rec.refusing.size() == 1);
  CHECK(a.rec.refusing[0].reason == errc::schema_mismatch);
  auto& text = b.rec.refusing[0].text;
  CHECK(text.find(wire::to_hex(lt::descriptor().digest)) != std::string::npos);
  CHECK(text.find(wire::to_hex(mycelium::test::descriptor().digest)) != std::string::npos);
  // The refusal frame reaches the other side as `refused`.
  side c{lt::descriptor(), "c"};
  side d{mycelium::test::descriptor(), "d"};
  CHECK_FALSE(pump(c, d));
  CHECK_FALSE(pump(d, c)); // d's hello + refusal: c refuses the hello first
  CHECK_FALSE(c.rec.established);
}

TEST_CASE("link protocol: authentication with a shared secret") {
  SUBCASE("same secret: each side is established only after the peer's auth frame") {
    side a{lt::descriptor(), "a", "k"};
    side b{lt::descriptor(), "b", "k"};
    REQUIRE(pump(a, b));
    CHECK(b.proto.current() == link_protocol::state::awaiting_auth);
    CHECK_FALSE(b.rec.established);
    // b answered a's challenge: its hello, then its auth frame (sequence 2).
    auto frames = frames_of(b.out);
    REQUIRE(frames.size() == 2);
    CHECK(frames[1].first.type_id == static_cast<uint32_t>(wire::control_type::auth));
    CHECK(frames[1].first.sequence == 2);
    wire::auth proof;
    REQUIRE(wire::decode(frames[1].second.data(), frames[1].second.size(), proof)
            == errc::none);
    CHECK(check_auth_proof("k", b.proto.peer().nonce, b.proto.local_hello(), proof.proof));
    CHECK(proof.proof
          == make_auth_proof("k", a.proto.local_hello().nonce, b.proto.local_hello()));
    REQUIRE(pump(b, a));
    CHECK(a.rec.established); // b's proof verified; a's auth is in a.out
    CHECK_FALSE(b.rec.established);
    REQUIRE(pump(a, b));
    CHECK(b.rec.established);
    // Data flows, from sequence 3 on.
    a.proto.write_interest(lt::ping::type_id, true, a.out);
    CHECK(frames_of(a.out).at(0).first.sequence == 3);
    REQUIRE(pump(a, b));
    CHECK(b.rec.interest.size() == 1);
  }
  SUBCASE("different secrets are refused on both sides") {
    side a{lt::descriptor(), "a", "k1"};
    side b{lt::descriptor(), "b", "k2"};
    REQUIRE(pump(a, b));
    CHECK_FALSE(pump(b, a));
    REQUIRE(a.rec.refusing.size() == 1);
    CHECK(a.rec.refusing[0].reason == errc::auth_failed);
    CHECK(a.rec.refusing[0].text.find("different secrets") != std::string::npos);
    CHECK(a.rec.refusing[0].text.find("node 'b'") != std::string::npos);
    CHECK_FALSE(pump(a, b)); // b reads a's auth frame first: refuses it too
    REQUIRE(b.rec.refusing.size() == 1);
    CHECK(b.rec.refusing[0].reason == errc::auth_failed);
    CHECK_FALSE(a.rec.established);
    CHECK_FALSE(b.rec.established);
  }
  SUBCASE("a secret on one side only is refused by both") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b", "k"};
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.refusing.at(0).reason == errc::auth_failed);
    CHECK(b.rec.refusing.at(0).text.find("no authentication proof") != std::string::npos);
    CHECK_FALSE(pump(b, a));
    CHECK(a.rec.refusing.at(0).reason == errc::auth_failed);
    CHECK(a.rec.refusing.at(0).text.find("none is configured here") != std::string::npos);
  }
  SUBCASE("a proof for another hello does not verify") {
    side a{lt::descriptor(), "a", "k"};
    side b{lt::descriptor(), "b", "k"};
    // Re-encode a's hello with another node name; a's auth frame still
    // covers a's real hello.
    auto frames = frames_of(a.out);
    wire::hello hl;
    REQUIRE(wire::decode(frames[0].second.data(), frames[0].second.size(), hl)
            == errc::none);
    hl.node = "mallory";
    a.out.clear();
    wire::encode_frame(a.out, hl, 1);
    REQUIRE(pump(a, b));
    REQUIRE(pump(b, a));
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.refusing.at(0).reason == errc::auth_failed);
    CHECK(b.rec.refusing.at(0).text.find("mallory") != std::string::npos);
  }
  SUBCASE("a captured hello and auth frame replayed on a new connection are refused") {
    // Capture everything a sends on one good connection.
    side a{lt::descriptor(), "a", "k"};
    side b{lt::descriptor(), "b", "k"};
    std::vector<uint8_t> captured = a.out;
    REQUIRE(pump(a, b));
    REQUIRE(pump(b, a));
    captured.insert(captured.end(), a.out.begin(), a.out.end());
    REQUIRE(pump(a, b));
    REQUIRE(b.rec.established);
    REQUIRE(frames_of(captured).size() == 2); // hello + auth
    // Replay against a fresh protocol with the same secret: its nonce is new.
    side c{lt::descriptor(), "c", "k"};
    c.out.clear();
    CHECK_FALSE(c.proto.consume(captured.data(), captured.size(), c.out, c.rec));
    CHECK_FALSE(c.rec.established);
    REQUIRE(c.rec.refusing.size() == 1);
    CHECK(c.rec.refusing[0].reason == errc::auth_failed);
    CHECK(c.rec.refusing[0].text.find("does not match") != std::string::npos);
    CHECK(last_refusal(c.out).reason == errc::auth_failed);
    // The same on the same instance after a reconnect (start() again).
    b.out.clear();
    b.rec = recorder{};
    b.proto.start(b.out);
    CHECK_FALSE(b.proto.consume(captured.data(), captured.size(), b.out, b.rec));
    CHECK_FALSE(b.rec.established);
    CHECK(b.rec.refusing.at(0).reason == errc::auth_failed);
  }
  SUBCASE("a hello without a nonce is refused when a secret is set") {
    side b{lt::descriptor(), "b", "k"};
    std::vector<uint8_t> bytes;
    wire::encode_frame(bytes, peer_hello("z", 0, true), 1); // encoder omits field 9
    CHECK_FALSE(b.proto.consume(bytes.data(), bytes.size(), b.out, b.rec));
    CHECK(b.rec.refusing.at(0).reason == errc::auth_failed);
    CHECK(b.rec.refusing.at(0).text.find("sent no nonce") != std::string::npos);
    // Without a secret, a hello without a nonce is accepted as before.
    side d{lt::descriptor(), "d"};
    bytes.clear();
    wire::encode_frame(bytes, peer_hello("z", 0, false), 1);
    CHECK(d.proto.consume(bytes.data(), bytes.size(), d.out, d.rec));
    CHECK(d.rec.established);
  }
  SUBCASE("our own nonce sent back is refused (reflection)") {
    side b{lt::descriptor(), "b", "k"};
    auto h = peer_hello("z", 0, true);
    h.nonce = b.proto.local_hello().nonce;
    std::vector<uint8_t> bytes;
    wire::encode_frame(bytes, h, 1);
    CHECK_FALSE(b.proto.consume(bytes.data(), bytes.size(), b.out, b.rec));
    CHECK(b.rec.refusing.at(0).text.find("reflected") != std::string::npos);
  }
  SUBCASE("an unknown authentication scheme is refused") {
    side b{lt::descriptor(), "b", "k"};
    auto h = peer_hello("z", 1, true);
    h.auth_scheme_id = 7;
    std::vector<uint8_t> bytes;
    wire::encode_frame(bytes, h, 1);
    CHECK_FALSE(b.proto.consume(bytes.data(), bytes.size(), b.out, b.rec));
    CHECK(b.rec.refusing.at(0).reason == errc::auth_failed);
    CHECK(b.rec.refusing.at(0).text.find("scheme 7") != std::string::npos);
  }
  SUBCASE("nothing but auth is accepted between the hello and the auth frame") {
    side b{lt::descriptor(), "b", "k"};
    std::vector<uint8_t> bytes;
    wire::encode_frame(bytes, peer_hello("z", 1, true), 1);
    wire::encode_interest(bytes, wire::control_type::subscribe, lt::ping::type_id, 2);
    CHECK_FALSE(b.proto.consume(bytes.data(), bytes.size(), b.out, b.rec));
    CHECK(b.rec.interest.empty());
    CHECK(b.rec.refusing.at(0).reason == errc::protocol_violation);
    CHECK(b.rec.refusing.at(0).text.find("before its authentication proof")
          != std::string::npos);
    // The refusal follows b's hello and auth frame: sequence 3.
    auto frames = frames_of(b.out);
    REQUIRE(frames.size() == 3);
    CHECK(frames[2].first.sequence == 3);
    CHECK(last_refusal(b.out).reason == errc::protocol_violation);
  }
  SUBCASE("an auth frame of the wrong size is refused") {
    side b{lt::descriptor(), "b", "k"};
    std::vector<uint8_t> bytes;
    wire::encode_frame(bytes, peer_hello("z", 1, true), 1);
    wire::encode_goodbye(bytes, 2);
    auto at = bytes.size() - wire::frame_header::size;
    wire::store_u32(bytes.data() + at + wire::frame_header::off_type_id,
                    static_cast<uint32_t>(wire::control_type::auth));
    CHECK_FALSE(b.proto.consume(bytes.data(), bytes.size(), b.out, b.rec));
    CHECK(b.rec.refusing.at(0).reason == errc::truncated);
    CHECK(b.rec.refusing.at(0).text.find("undecodable auth frame") != std::string::npos);
  }
}

TEST_CASE("auth proofs: known answer and the frame bytes of docs/wire-protocol.md section 9.4") {
  wire::hello own;
  for (uint8_t i = 0; i < 16; ++i)
    own.nonce[i] = static_cast<uint8_t>(16 + i);
  for (uint8_t i = 0; i < 32; ++i)
    own.schema_digest[i] = static_cast<uint8_t>(32 + i);
  own.node = "a";
  own.service = "s";
  own.pid = 7;
  wire::digest128 challenge;
  for (uint8_t i = 0; i < 16; ++i)
    challenge[i] = i;
  // HMAC-SHA256("k", "mycelium-auth-v2" 00..0f 10..1f 20..3f "a" 00 "s" 00
  // 07 00 00 00), computed independently (Python's hmac module).
  const wire::digest256 expected{0x45, 0x1d, 0xce, 0x9d, 0xae, 0x9d, 0xbc, 0x60,
                                 0xad, 0x13, 0xee, 0xc4, 0x1b, 0x9c, 0xd6, 0xcd,
                                 0x74, 0x1f, 0x7e, 0x6a, 0xd6, 0x03, 0x75, 0x13,
                                 0x0b, 0x17, 0xa1, 0x95, 0x1f, 0xde, 0xc3, 0xa2};
  auto proof = make_auth_proof("k", challenge, own);
  CHECK(proof == expected);
  CHECK(check_auth_proof("k", challenge, own, proof));
  CHECK_FALSE(check_auth_proof("K", challenge, own, proof));
  auto other = challenge;
  other[0] ^= 1;
  CHECK_FALSE(check_auth_proof("k", other, own, proof));
  // The auth frame: header, tag 0C 00, L = 32, the proof.
  std::vector<uint8_t> out;
  wire::encode_frame(out, wire::auth{expected}, 2);
  std::vector<uint8_t> golden{0x26, 0x00, 0x00, 0x00, 0x08, 0x00, 0xff, 0xff,
                              0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                              0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                              0x0c, 0x00, 0x20, 0x00, 0x00, 0x00};
  golden.insert(golden.end(), expected.begin(), expected.end());
  CHECK(out == golden);
  wire::auth back;
  CHECK(wire::decode(out.data() + 24, out.size() - 24, back) == errc::none);
  CHECK(back.proof == expected);
  CHECK(wire::decode(out.data() + 24, 0, back) == errc::truncated);
  out[26] = 0x1f; // L = 31
  CHECK(wire::decode(out.data() + 24, out.size() - 25, back)
        == errc::array_length_mismatch);
}

TEST_CASE("link protocol: a refusal with a code this build does not know still arrives") {
  for (uint32_t code : {uint32_t{200}, uint32_t{70000}}) {
    CAPTURE(code);
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    // a's hello, then a refusal frame with a raw reason number.
    std::vector<uint8_t> payload{0x0a, 0x00, 0, 0, 0, 0, 0x14, 0x00, 3, 0, 0, 0,
                                 'n', 'e', 'w'};
    wire::store_u32(payload.data() + 2, code);
    wire::frame_header h;
    h.payload_length = static_cast<uint32_t>(payload.size());
    h.type_id = static_cast<uint32_t>(wire::control_type::refuse);
    h.sequence = 2;
    h.flags = wire::frame_header::flag_control;
    auto at = a.out.size();
    a.out.resize(at + wire::frame_header::size);
    h.write(a.out.data() + at);
    a.out.insert(a.out.end(), payload.begin(), payload.end());
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.errors.empty()); // not an undecodable frame
    REQUIRE(b.rec.refused.size() == 1);
    auto& r = b.rec.refused[0];
    CHECK(r.code == code);
    CHECK(r.text == "new");
    CHECK(wire::reason_name(r) == "unknown code " + std::to_string(code));
    CHECK(std::string{to_string(r.reason)}
          == (code < 255 ? "unknown code " + std::to_string(code)
                         : std::string{"unknown code 255 or above"}));
  }
}

TEST_CASE("link protocol: a type id and the control flag that disagree") {
  side a{lt::descriptor(), "a"};
  side b{lt::descriptor(), "b"};
  handshake(a, b);
  // From here on a's frames are written by hand (a's own counter is at 1).
  auto put = [&](uint32_t type_id, uint16_t flags, uint64_t seq) {
    wire::frame_header h;
    h.type_id = type_id;
    h.flags = flags;
    h.sequence = seq;
    auto at = a.out.size();
    a.out.resize(at + wire::frame_header::size);
    h.write(a.out.data() + at);
  };
  // A data frame (flag clear) with a control type id: an unknown data type,
  // dropped and counted; the link goes on.
  put(static_cast<uint32_t>(wire::control_type::heartbeat), 0, 2);
  CHECK(pump(a, b));
  CHECK(b.rec.bad_frames == std::vector<errc>{errc::unknown_type});
  // A control frame (flag set) with a schema type id: a protocol violation.
  put(lt::ping::type_id, wire::frame_header::flag_control, 3);
  CHECK_FALSE(pump(a, b));
  CHECK(b.rec.errors.at(0).first == errc::protocol_violation);
}

TEST_CASE("link protocol: a sequence gap, a corrupt header or data before the hello end the link") {
  SUBCASE("gap") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    handshake(a, b);
    a.proto.write_heartbeat(a.out);
    a.out.clear(); // lost frame
    a.proto.write_heartbeat(a.out);
    CHECK_FALSE(pump(a, b));
    REQUIRE(b.rec.errors.size() == 1);
    CHECK(b.rec.errors[0].first == errc::sequence_gap);
    CHECK(b.rec.errors[0].second.find("expected 2, got 3") != std::string::npos);
  }
  SUBCASE("corrupt header") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    handshake(a, b);
    a.proto.write_heartbeat(a.out);
    a.out[wire::frame_header::off_reserved0] = 1;
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.errors.at(0).first == errc::bad_frame_header);
  }
  SUBCASE("data before the hello is refused with a refusal frame") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    a.out.clear();
    encode_frame(lt::ping{1, {}}, 1, a.out);
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.errors.empty());
    REQUIRE(b.rec.refusing.size() == 1);
    CHECK(b.rec.refusing[0].reason == errc::protocol_violation);
    CHECK(b.rec.refusing[0].text.find("data frame of type") != std::string::npos);
    CHECK(b.rec.refusing[0].text.find("before its hello") != std::string::npos);
    auto r = last_refusal(b.out); // after b's hello, as sequence 2
    CHECK(r.reason == errc::protocol_violation);
    CHECK(frames_of(b.out).back().first.sequence == 2);
  }
  SUBCASE("a corrupt header before the hello is refused with a refusal frame") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    a.out[wire::frame_header::off_reserved1] = 1;
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.refusing.at(0).reason == errc::bad_frame_header);
    CHECK(last_refusal(b.out).reason == errc::bad_frame_header);
  }
  SUBCASE("a bad magic is refused with the documented text") {
    side b{lt::descriptor(), "b"};
    auto h = peer_hello("x", 1, false);
    h.magic = 0x4c43594e; // "NYCL"
    std::vector<uint8_t> bytes;
    wire::encode_frame(bytes, h, 1);
    CHECK_FALSE(b.proto.consume(bytes.data(), bytes.size(), b.out, b.rec));
    REQUIRE(b.rec.refusing.size() == 1);
    CHECK(b.rec.refusing[0].reason == errc::bad_magic);
    CHECK(b.rec.refusing[0].text
          == "peer node 'x' service 'svc' (pid 9) is not a Mycelium peer (bad magic)");
  }
  SUBCASE("a hello without the magic field is refused as a bad magic") {
    side b{lt::descriptor(), "b"};
    auto h = peer_hello("x", 1, false);
    std::vector<uint8_t> bytes;
    wire::encode_frame(bytes, h, 1);
    // The first field is the magic (id 1): renumber it to an unknown id,
    // which decoders skip, so the hello arrives without a magic.
    auto& lo = bytes[wire::frame_header::size];
    auto& hi = bytes[wire::frame_header::size + 1];
    uint16_t tag = static_cast<uint16_t>(lo | (hi << 8));
    REQUIRE((tag >> 3) == 1);
    tag = static_cast<uint16_t>((99 << 3) | (tag & 7));
    lo = static_cast<uint8_t>(tag & 0xFF);
    hi = static_cast<uint8_t>(tag >> 8);
    CHECK_FALSE(b.proto.consume(bytes.data(), bytes.size(), b.out, b.rec));
    REQUIRE(b.rec.refusing.size() == 1);
    CHECK(b.rec.refusing[0].reason == errc::bad_magic);
  }
  SUBCASE("a frame over max_payload") {
    side a{lt::descriptor(), "a", {}, 1 << 20};
    side b{lt::descriptor(), "b", {}, 64};
    handshake(a, b);
    REQUIRE(a.proto.write_data(caf::make_message(lt::ping{1, std::vector<uint8_t>(100)}),
                               a.out)
            == errc::none);
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.errors.at(0).first == errc::frame_too_large);
  }
  SUBCASE("a closed protocol consumes nothing more") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    a.out.assign(24, 0xFF);
    CHECK_FALSE(pump(a, b));
    uint8_t more[1] = {0};
    CHECK_FALSE(b.proto.consume(more, 1, b.out, b.rec));
  }
}

TEST_CASE("link protocol: an undecodable payload is dropped and counted, the link goes on") {
  side a{lt::descriptor(), "a"};
  side b{lt::descriptor(), "b"};
  handshake(a, b);
  REQUIRE(a.proto.write_data(caf::make_message(lt::probe{1}), a.out) == errc::none);
  a.out[wire::frame_header::size] = 0xFF; // ruin the first TLV tag
  REQUIRE(a.proto.write_data(caf::make_message(lt::probe{2}), a.out) == errc::none);
  CHECK(pump(a, b));
  CHECK(b.rec.bad_frames.size() == 1);
  REQUIRE(b.rec.data.size() == 1);
  CHECK(b.rec.data[0].get_as<lt::probe>(0).seq == 2);
}

TEST_CASE("link protocol: write_data refuses what does not fit, appending nothing") {
  side a{lt::descriptor(), "a", {}, 32};
  std::vector<uint8_t> out;
  CHECK(a.proto.write_data(caf::make_message(lt::ping{1, std::vector<uint8_t>(100)}), out)
        == errc::frame_too_large);
  CHECK(out.empty());
  CHECK(a.proto.last_type_id() == lt::ping::type_id);
  CHECK(a.proto.write_data(caf::make_message(std::string{"x"}), out) == errc::unknown_type);
  CHECK(out.empty());
}

TEST_CASE("link control frames match the bytes in docs/wire-protocol.md section 9") {
  std::vector<uint8_t> out;
  wire::encode_interest(out, wire::control_type::subscribe, 5, 2);
  std::vector<uint8_t> expected{0x06, 0x00, 0x00, 0x00, 0x03, 0x00, 0xff, 0xff,
                                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x0a, 0x00, 0x05, 0x00, 0x00, 0x00};
  CHECK(out == expected);
  uint32_t id = 0;
  CHECK(wire::decode_interest(out.data() + 24, 6, id) == errc::none);
  CHECK(id == 5);
  CHECK(wire::decode_interest(out.data() + 24, 0, id) == errc::truncated);
  out.clear();
  wire::encode_heartbeat(out, 9);
  CHECK(out.size() == 24);
  CHECK(out[4] == 0x05);
}

TEST_CASE("link protocol: a goodbye ends the link cleanly; before the hello it is a violation") {
  side a{lt::descriptor(), "a"};
  side b{lt::descriptor(), "b"};
  handshake(a, b);
  a.proto.write_goodbye(a.out);
  a.proto.write_heartbeat(a.out); // nothing after a goodbye is read
  CHECK_FALSE(pump(a, b));
  CHECK(b.rec.goodbye);
  CHECK(b.rec.errors.empty());
  side c{lt::descriptor(), "c"};
  side d{lt::descriptor(), "d"};
  c.out.clear();
  wire::encode_goodbye(c.out, 1);
  CHECK_FALSE(pump(c, d));
  CHECK_FALSE(d.rec.goodbye);
  CHECK(d.rec.refusing.at(0).reason == errc::protocol_violation);
  CHECK(d.rec.refusing.at(0).text.find("goodbye") != std::string::npos);
  CHECK(last_refusal(d.out).reason == errc::protocol_violation);
}

TEST_CASE("shm_attach frames round-trip; a socket link refuses them") {
  std::vector<uint8_t> out;
  wire::encode_frame(out, wire::shm_attach{"seg", "bell"}, 3);
  // The bytes of docs/wire-protocol.md section 9.
  std::vector<uint8_t> expected{0x13, 0x00, 0x00, 0x00, 0x07, 0x00, 0xff, 0xff,
                                0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x0c, 0x00, 0x03, 0x00, 0x00, 0x00, 's',  'e',
                                'g',  0x14, 0x00, 0x04, 0x00, 0x00, 0x00, 'b',
                                'e',  'l',  'l'};
  CHECK(out == expected);
  wire::shm_attach x;
  CHECK(wire::decode(out.data() + 24, out.size() - 24, x) == errc::none);
  CHECK(x.segment == "seg");
  CHECK(x.doorbell == "bell");
  wire::shm_attach missing;
  CHECK(wire::decode(out.data() + 24, 0, missing) == errc::truncated);
  // A Unix or TCP link does not expect shared memory: protocol violation,
  // with a text that says what to configure.
  side a{lt::descriptor(), "a"};
  side b{lt::descriptor(), "b"};
  handshake(a, b);
  a.proto.write_shm_attach({"mycelium-1-0-1", "bell"}, a.out);
  CHECK_FALSE(pump(a, b));
  REQUIRE(b.rec.errors.size() == 1);
  CHECK(b.rec.errors[0].first == errc::protocol_violation);
  CHECK(b.rec.errors[0].second.find("same link kind") != std::string::npos);
}
