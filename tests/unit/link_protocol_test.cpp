// The transport-independent link protocol, driven without any I/O: two
// instances feed each other's bytes (in any split). Handshake, auth,
// interest, data, and every way a byte stream can go wrong.
#include <doctest/doctest.h>

#include <caf/all.hpp>

#include "link_test.hpp"
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
  REQUIRE(pump(a, b, chunk));
  REQUIRE(pump(b, a, chunk));
  REQUIRE(a.rec.established);
  REQUIRE(b.rec.established);
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
  SUBCASE("same secret") {
    side a{lt::descriptor(), "a", "k"};
    side b{lt::descriptor(), "b", "k"};
    handshake(a, b);
  }
  SUBCASE("different secrets") {
    side a{lt::descriptor(), "a", "k1"};
    side b{lt::descriptor(), "b", "k2"};
    CHECK_FALSE(pump(a, b));
    REQUIRE(b.rec.refusing.size() == 1);
    CHECK(b.rec.refusing[0].reason == errc::auth_failed);
    CHECK(b.rec.refusing[0].text.find("different secrets") != std::string::npos);
    CHECK_FALSE(pump(b, a)); // a reads b's refusal... after refusing b's hello
  }
  SUBCASE("missing proof") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b", "k"};
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.refusing.at(0).text.find("no authentication proof") != std::string::npos);
    // a accepts b (a has no secret) and then reads b's refusal.
    CHECK_FALSE(pump(b, a));
    CHECK(a.rec.refused.at(0).reason == errc::auth_failed);
  }
  SUBCASE("a proof for another hello does not verify") {
    side a{lt::descriptor(), "a", "k"};
    side b{lt::descriptor(), "b", "k"};
    // Re-encode a's hello with another node name, keeping a's proof.
    std::vector<uint8_t> bytes = a.out;
    a.out.clear();
    wire::frame_header h;
    REQUIRE(wire::frame_header::read(bytes.data(), bytes.size(), 1 << 20, h) == errc::none);
    wire::hello hl;
    REQUIRE(wire::decode(bytes.data() + wire::frame_header::size, h.payload_length, hl)
            == errc::none);
    hl.node = "mallory";
    wire::encode_frame(a.out, hl, 1);
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.refusing.at(0).reason == errc::auth_failed);
  }
}

TEST_CASE("link protocol: a sequence gap, a corrupt header or data before the hello reset the link") {
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
  SUBCASE("data before the hello") {
    side a{lt::descriptor(), "a"};
    side b{lt::descriptor(), "b"};
    a.out.clear();
    encode_frame(lt::ping{1, {}}, 1, a.out);
    CHECK_FALSE(pump(a, b));
    CHECK(b.rec.errors.at(0).first == errc::protocol_violation);
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
  CHECK(d.rec.errors.at(0).first == errc::protocol_violation);
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
