// libFuzzer target mycelium_fuzz_link: a peer's byte stream into
// mycelium::transports::link_protocol (transports/src/link_protocol.cpp), the
// sans-I/O protocol under every socket link: handshake with schema digest and
// challenge-response authentication (auth frames with an HMAC over the
// peer's nonce), sequence numbers, interest and heartbeat frames, data
// frames, and the reassembly of frames that arrive split across reads.
//
// Nonces are fixed (link_protocol::set_nonce_source) so that a run is
// reproducible and an input can carry a valid auth frame: the fuzzed side's
// hello nonce is fuzzed_nonce, the correct peer's is peer_nonce.
//
// Input layout (bytes past the end read as 0):
//   byte 0   configuration
//            bits 0-1  mode
//                        0 raw: the body goes straight into a fresh protocol
//                          that awaits the peer's hello;
//                        1 established: two protocols (test schema,
//                          tests/schemas/test_messages.toml) complete a valid
//                          handshake first, then the body continues the
//                          peer's stream (its next frame is sequence 2, or
//                          3 after its auth frame with a secret);
//                        2 framed, established: as 1, but the body is a list
//                          of records (see build_stream) turned into frames
//                          with correct sequence numbers;
//                        3 framed, raw: as 2 without the handshake; the
//                          records have to bring a hello.
//            bit 2     both sides are configured with the secret fuzz_secret
//            bits 3-4  max_payload of the fuzzed side: 1 MiB, 1024, 64, 16
//            bit 5     restart: after the run, start() both protocols again
//                      (a reconnect) and replay the same input
//   byte 1   bits 0-3: k, the number of chunk sizes that follow
//   k bytes  chunk sizes, used in turn: the stream is handed to consume() in
//            pieces of that many bytes (0: an empty call, 255: all the rest);
//            with k = 0 in one piece
//   rest     the body
// Every piece is passed in an exact-size heap copy, so AddressSanitizer sees a
// read past the end of what one consume() call was given.
//
// Properties (a violation prints what happened and aborts, which libFuzzer
// reports as a crash with the reproducer):
//  - no crash, leak or undefined behaviour (ASan + UBSan);
//  - consume() never returns true once the listener got on_error, on_refused
//    or on_refusing, it returns false only after one of them, and after one
//    false every further call returns false; after on_error / on_refused /
//    on_refusing the listener hears nothing more and the state is `closed`;
//  - on_established comes at most once, with the test schema's digest (and,
//    with a secret, after a hello that announced authentication with a
//    usable nonce), before any on_interest, on_data or on_bad_frame; the
//    peer's hello re-encodes to an equal hello;
//  - on_interest names a type id of the schema and re-encodes
//    (encode_interest / decode_interest) to the same id;
//  - every on_data message holds the generated struct of its type id, and
//    re-encodes (link_protocol::write_data) to a frame of that type whose
//    payload decodes to an equal value (same canonical encoding and
//    operator==);
//  - what the fuzzed side wrote to its output (its hello, its auth frame, a
//    refusal) is accepted by a correct peer: that peer establishes the link
//    (with a secret: once the fuzzed side's auth frame answered the peer's
//    own nonce; an auth frame answering another nonce is refused with
//    auth_failed) and, if the fuzzed side refused, hears the same refusal
//    (on_refused), never on_error;
//    if the fuzzed side is still established after the input, it can still
//    send (write_interest, write_heartbeat, write_data; write_data refuses
//    what exceeds its max_payload) and the peer receives it;
//  - with the restart bit: after start(), the same input on the same
//    instances gives the same callbacks and results as the first time.
//
// Extra modes (libFuzzer ignores flags that start with "--"):
//   --write-seeds=DIR  writes the seed corpus (sessions of valid hello,
//                      interest, heartbeat and data frames in every mode) to
//                      DIR and exits;
//   --trace=1          prints every consume() call and callback to stderr,
//                      e.g. `mycelium_fuzz_link --trace=1 crash-<sha1>`.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "mycelium/transports/auth.hpp"
#include "mycelium/transports/link_protocol.hpp"
#include "mycelium/wire/tlv.hpp"

namespace w = mycelium::wire;
namespace t = mycelium::test;
namespace fz = mycelium::fuzz;
using mycelium::errc;
using mycelium::transports::link_identity;
using mycelium::transports::link_protocol;

namespace {

constexpr char prog[] = "mycelium_fuzz_link";
const std::string fuzz_secret = "mycelium-fuzz-secret";
constexpr uint32_t max_payloads[4] = {w::default_max_payload, 1024, 64, 16};
constexpr uint32_t echo_max_payload = w::default_max_payload;

/// The hello nonces of the two sides (see the top of this file).
w::digest128 nonce_from(uint8_t first) {
  w::digest128 n;
  for (size_t i = 0; i < n.size(); ++i)
    n[i] = static_cast<uint8_t>(first + i);
  return n;
}
const w::digest128 fuzzed_nonce = nonce_from(0x50);
const w::digest128 peer_nonce = nonce_from(0xA0);

enum mode : uint8_t {
  mode_raw = 0,
  mode_established = 1,
  mode_framed_established = 2,
  mode_framed_raw = 3,
};

/// Bits of the configuration byte (see the top of this file).
constexpr uint8_t cfg_secret = 1u << 2;
constexpr int cfg_max_payload_shift = 3;
constexpr uint8_t cfg_restart = 1u << 5;

/// `--trace=1`: print every callback and consume() result to stderr (for
/// reading what a reproducer does).
bool trace = false;

[[noreturn]] void violation(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "%s: PROPERTY VIOLATION: %s%s%s\n", prog, what,
               detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

std::string describe(errc e, const std::string& text) {
  return std::string{mycelium::to_string(e)} + " \"" + text + "\"";
}

// -- listener with the property checks ---------------------------------------

/// Checks each callback against what the protocol reported so far.
class checker : public link_protocol::listener {
public:
  checker(const char* who, const link_protocol& proto, bool secret)
    : who_(who), proto_(proto), secret_(secret),
      echo_(t::descriptor(), link_identity{"echo", "fuzz", 1}, {}, echo_max_payload) {
  }

  bool established() const noexcept { return established_; }
  bool terminal() const noexcept { return terminal_; }
  bool errored() const noexcept { return errored_; }
  const w::refuse* refusing() const noexcept { return refusing_ ? &refusing_value_ : nullptr; }
  const w::refuse* refused() const noexcept { return refused_ ? &refused_value_ : nullptr; }
  const std::string& error_text() const noexcept { return error_text_; }

  /// Every callback and consume() result so far, with its details.
  const std::vector<std::string>& log() const noexcept { return log_; }
  void note(std::string what) { log_.push_back(std::move(what)); }

  /// Forgets the connection (after link_protocol::start).
  void reset() {
    established_ = false;
    terminal_ = false;
    terminal_event_ = "";
    errored_ = false;
    error_text_.clear();
    refusing_ = false;
    refused_ = false;
    log_.clear();
  }

  void on_established(const w::hello& peer) override {
    before("on_established", peer.node);
    if (established_)
      fail("on_established twice");
    established_ = true;
    if (proto_.current() != link_protocol::state::established)
      fail("on_established, but the state is not `established`");
    if (peer.schema_digest != t::descriptor().digest)
      fail("established with a peer whose schema digest differs");
    if (peer.magic != w::hello_magic || peer.version != w::protocol_version)
      fail("established with a peer of another magic or protocol version");
    if (secret_
        && (peer.auth_scheme_id != static_cast<uint8_t>(w::auth_scheme::hmac_sha256)
            || peer.nonce == w::digest128{} || peer.nonce == proto_.local_hello().nonce))
      fail("established with a secret configured, but the peer's hello did not "
           "announce authentication with a usable nonce");
    // The hello the protocol accepted encodes and decodes to itself.
    std::vector<uint8_t> frame;
    w::encode_frame(frame, peer, 1);
    w::frame_header h;
    if (w::frame_header::read(frame.data(), frame.size(), 1u << 20, h) != errc::none
        || h.type_id != static_cast<uint32_t>(w::control_type::hello))
      fail("the accepted hello re-encodes to a bad frame", fz::hex(frame));
    w::hello again;
    if (auto e = w::decode(frame.data() + w::frame_header::size, h.payload_length, again);
        e != errc::none || !fz::same(peer, again))
      fail("the accepted hello does not survive re-encoding", fz::hex(frame));
  }

  void on_refusing(const w::refuse& why) override {
    before("on_refusing", describe(why.reason, why.text));
    terminate("on_refusing");
    if (established_)
      fail("on_refusing after on_established");
    if (why.reason == errc::none)
      fail("on_refusing without a reason", why.text);
    refusing_ = true;
    refusing_value_ = why;
  }

  void on_refused(const w::refuse& why) override {
    before("on_refused", describe(why.reason, why.text));
    terminate("on_refused");
    refused_ = true;
    refused_value_ = why;
  }

  void on_interest(uint32_t type_id, bool add) override {
    before("on_interest", std::to_string(type_id) + (add ? " add" : " remove"));
    if (!established_)
      fail("on_interest before on_established");
    if (t::descriptor().find(type_id) == nullptr)
      fail("on_interest for a type id outside the schema", std::to_string(type_id));
    std::vector<uint8_t> frame;
    w::encode_interest(frame, add ? w::control_type::subscribe : w::control_type::unsubscribe,
                       type_id, 2);
    w::frame_header h;
    uint32_t again = 0;
    if (w::frame_header::read(frame.data(), frame.size(), 1u << 20, h) != errc::none
        || w::decode_interest(frame.data() + w::frame_header::size, h.payload_length, again)
             != errc::none
        || again != type_id)
      fail("an interest frame does not survive re-encoding", fz::hex(frame));
  }

  void on_data(uint32_t type_id, caf::message msg) override {
    before("on_data", std::to_string(type_id));
    if (!established_)
      fail("on_data before on_established");
    bool matched = false;
    fz::for_each_type([&](auto proto) {
      using T = decltype(proto);
      if (type_id == T::type_id) {
        matched = true;
        check_data<T>(msg);
      }
    });
    if (!matched)
      fail("on_data with a type id outside the schema", std::to_string(type_id));
  }

  void on_bad_frame(errc code, const std::string& text) override {
    before("on_bad_frame", describe(code, text));
    if (!established_)
      fail("on_bad_frame before on_established");
    if (code == errc::none)
      fail("on_bad_frame without an error code", text);
  }

  void on_goodbye() override {
    before("on_goodbye", "");
    if (!established_)
      fail("on_goodbye before on_established");
    terminate("on_goodbye");
  }

  void on_error(errc code, const std::string& text) override {
    before("on_error", describe(code, text));
    terminate("on_error");
    if (code == errc::none)
      fail("on_error without an error code", text);
    errored_ = true;
    error_text_ = describe(code, text);
  }

  [[noreturn]] void fail(const char* what, const std::string& detail = {}) const {
    std::fprintf(stderr, "%s: [%s side]\n", prog, who_);
    violation(what, detail);
  }

private:
  void before(const char* event, std::string detail) {
    if (trace)
      std::fprintf(stderr, "  [%s] %s %s\n", who_, event, detail.c_str());
    log_.push_back(std::string{event} + " " + detail);
    if (terminal_)
      fail("the listener was called after the connection closed",
           std::string{event} + " after " + terminal_event_);
  }

  void terminate(const char* event) {
    terminal_ = true;
    terminal_event_ = event;
    if (proto_.current() != link_protocol::state::closed)
      fail("the state is not `closed` at a terminal callback", event);
  }

  template <class T>
  void check_data(const caf::message& msg) {
    if (msg.size() != 1 || !msg.match_element<T>(0))
      fail("on_data message does not hold the type of its type id", T::type_name);
    const T& v = msg.get_as<T>(0);
    std::vector<uint8_t> frame;
    if (auto e = echo_.write_data(msg, frame); e != errc::none)
      fail("write_data refused a received message", mycelium::to_string(e));
    w::frame_header h;
    if (auto e = w::frame_header::read(frame.data(), frame.size(), echo_max_payload, h);
        e != errc::none)
      fail("write_data wrote a bad frame header", fz::hex(frame));
    if (h.type_id != T::type_id || h.flags != 0
        || frame.size() != w::frame_header::size + h.payload_length)
      fail("write_data wrote a frame header of another type or length", fz::hex(frame));
    caf::message again;
    if (auto e = t::descriptor().decode(h.type_id, frame.data() + w::frame_header::size,
                                        h.payload_length, again);
        e != errc::none)
      fail("a re-encoded message does not decode",
           std::string{T::type_name} + " " + mycelium::to_string(e) + " " + fz::hex(frame));
    if (again.size() != 1 || !again.match_element<T>(0))
      fail("a re-encoded message decodes to another type", T::type_name);
    if (!fz::same(v, again.get_as<T>(0)))
      fail("a re-encoded message decodes to a different value",
           std::string{T::type_name} + " first " + fz::hex(fz::payload_of(v)) + " second "
             + fz::hex(fz::payload_of(again.get_as<T>(0))));
    log_.back() += " " + fz::hex(frame.data() + w::frame_header::size, h.payload_length);
  }

  const char* who_;
  const link_protocol& proto_;
  bool secret_;
  link_protocol echo_; ///< re-encodes received messages (write_data)
  bool established_ = false;
  bool terminal_ = false;
  const char* terminal_event_ = "";
  bool errored_ = false;
  std::string error_text_;
  std::vector<std::string> log_;
  bool refusing_ = false;
  w::refuse refusing_value_;
  bool refused_ = false;
  w::refuse refused_value_;
};

/// One end of a link: protocol, checking listener and the bytes it sent.
struct side {
  const char* name;
  link_protocol proto;
  checker rec;
  std::vector<uint8_t> out;

  side(const char* who, bool secret, uint32_t max_payload, const w::digest128& nonce)
    : name(who),
      proto(t::descriptor(), link_identity{who, "fuzz", 7},
            secret ? fuzz_secret : std::string{}, max_payload),
      rec(who, proto, secret) {
    proto.set_nonce_source([nonce](w::digest128& out) { out = nonce; });
    proto.start(out);
  }

  /// A new connection on the same protocol instance.
  void restart() {
    out.clear();
    rec.reset();
    proto.start(out);
  }
};

/// consume() with the checks that concern its return value. `open` is the
/// previous result (false once any call returned false).
void consume_checked(side& s, const uint8_t* p, size_t n, bool& open) {
  auto copy = fz::exact_copy(p, n);
  if (trace)
    std::fprintf(stderr, "[%s] consume %zu bytes: %s\n", s.name, n, fz::hex(p, n).c_str());
  bool ok = s.proto.consume(copy.get(), n, s.out, s.rec);
  if (trace)
    std::fprintf(stderr, "[%s] -> %s\n", s.name, ok ? "true" : "false");
  s.rec.note(ok ? "consume true" : "consume false");
  if (ok && s.rec.terminal())
    s.rec.fail("consume returned true after on_error / on_refused / on_refusing");
  if (ok && !open)
    s.rec.fail("consume returned true after an earlier call returned false");
  if (!ok && !s.rec.terminal())
    s.rec.fail("consume returned false without on_error / on_refused / on_refusing");
  if (ok && s.proto.current() == link_protocol::state::closed)
    s.rec.fail("consume returned true, but the state is `closed`");
  if (ok && (s.proto.current() == link_protocol::state::established) != s.rec.established())
    s.rec.fail("state `established` and on_established disagree");
  (void) s.proto.peer_name();
  open = open && ok;
}

/// Moves everything `from` wrote so far into `to` in one piece.
bool pump(side& from, side& to) {
  auto bytes = std::move(from.out);
  from.out.clear();
  bool open = true;
  consume_checked(to, bytes.data(), bytes.size(), open);
  return open;
}

// -- input parsing ------------------------------------------------------------

/// Reads bytes from the input; past the end it yields zeros / nothing.
class cursor {
public:
  cursor(const uint8_t* p, size_t n) : p_(p), n_(n) {}

  bool at_end() const noexcept { return pos_ >= n_; }
  size_t left() const noexcept { return n_ - pos_; }
  const uint8_t* here() const noexcept { return p_ + pos_; }

  uint8_t byte() noexcept { return pos_ < n_ ? p_[pos_++] : 0; }

  uint32_t u32() noexcept {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<uint32_t>(byte()) << (8 * i);
    return v;
  }

  /// Up to `n` bytes (fewer at the end of the input).
  std::vector<uint8_t> take(size_t n) {
    n = std::min(n, left());
    std::vector<uint8_t> out(p_ + pos_, p_ + pos_ + n);
    pos_ += n;
    return out;
  }

private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

// -- framed mode: records -> frames --------------------------------------------

/// Record kinds of the framed modes: one op byte, kind = op & 7, bits =
/// op >> 3, then the record's own bytes. A "type" is a byte (index into the
/// schema's types) or, with bit 1, a raw u32 (see pick_type).
enum record : uint8_t {
  rec_heartbeat = 0, ///< heartbeat frame
  rec_interest = 1,  ///< subscribe (bit 0) / unsubscribe; type
  rec_frame = 2,     ///< type, len byte, payload; bit 2: instead of the
                     ///< type, a control frame of type 0xFFFF0000 + next byte
  rec_message = 3,   ///< a valid data frame: a default value of type (byte % 10)
  rec_hello = 4,     ///< see append_hello
  rec_refuse = 5,    ///< reason byte, len byte, text
  rec_raw = 6,       ///< len byte, then that many bytes verbatim
  rec_seq_jump = 7,  ///< sequence += (int8) next byte (gaps, repeats)
};

/// A type id: with `raw` a u32 from the input, else the (byte % count)-th
/// type of the schema.
uint32_t pick_type(cursor& c, bool raw) {
  if (raw)
    return c.u32();
  const auto& types = t::descriptor().types;
  return types[c.byte() % types.size()].type_id;
}

/// An auth frame whose field 1 holds `proof` (any length).
void append_auth(const std::vector<uint8_t>& proof, uint64_t seq, std::vector<uint8_t>& out) {
  auto at = out.size();
  out.resize(at + w::frame_header::size);
  w::writer wr{out};
  wr.sized(1, proof.data(), proof.size());
  w::frame_header h;
  h.payload_length = static_cast<uint32_t>(out.size() - at - w::frame_header::size);
  h.type_id = static_cast<uint32_t>(w::control_type::auth);
  h.sequence = seq;
  h.flags = w::frame_header::flag_control;
  h.write(out.data() + at);
}

/// A hello record. bits: 0 version + 1, 1 schema digest byte flipped, 2 one
/// type of the list changed (byte: index; bit 7 removes it instead), 3
/// announce hmac_sha256 and follow the hello with a valid auth frame for
/// fuzz_secret answering fuzzed_nonce, 4 announce the scheme (byte) and
/// follow with an auth frame of (byte % 64) input bytes (none for 0).
/// Then: node length byte (% 32) and node bytes, pid u32, 16 nonce bytes.
void append_hello(cursor& c, uint8_t bits, uint64_t& seq, std::vector<uint8_t>& out) {
  auto node_bytes = c.take(c.byte() % 32);
  std::string node(node_bytes.begin(), node_bytes.end());
  auto pid = c.u32();
  auto h = mycelium::make_hello(t::descriptor(), node, "fuzz-peer", pid);
  auto nonce = c.take(h.nonce.size());
  std::copy(nonce.begin(), nonce.end(), h.nonce.begin());
  if (bits & 1)
    ++h.version;
  if (bits & 2)
    h.schema_digest[c.byte() % h.schema_digest.size()] ^= 0x80;
  if ((bits & 4) && !h.types.empty()) {
    auto b = c.byte();
    auto i = (b & 0x7F) % h.types.size();
    if (b & 0x80)
      h.types.erase(h.types.begin() + static_cast<long>(i));
    else
      h.types[i].digest[0] ^= 1;
  }
  std::vector<uint8_t> proof;
  bool with_auth = (bits & 8) != 0;
  if (bits & 16) {
    h.auth_scheme_id = c.byte();
    proof = c.take(c.byte() % 64);
    with_auth = !proof.empty();
  } else if (bits & 8) {
    h.auth_scheme_id = static_cast<uint8_t>(w::auth_scheme::hmac_sha256);
    auto p = mycelium::transports::make_auth_proof(fuzz_secret, fuzzed_nonce, h);
    proof.assign(p.begin(), p.end());
  }
  w::encode_frame(out, h, seq++);
  if (with_auth)
    append_auth(proof, seq++, out);
}

/// Turns the records of the framed modes into a byte stream whose frames
/// carry the sequence numbers `first_seq`, `first_seq` + 1, ...
std::vector<uint8_t> build_stream(cursor& c, uint64_t first_seq) {
  std::vector<uint8_t> out;
  uint64_t seq = first_seq;
  while (!c.at_end()) {
    auto op = c.byte();
    auto bits = static_cast<uint8_t>(op >> 3);
    switch (static_cast<record>(op & 7)) {
      case rec_heartbeat:
        w::encode_heartbeat(out, seq++);
        break;
      case rec_interest: {
        auto type = pick_type(c, bits & 2);
        w::encode_interest(out, (bits & 1) ? w::control_type::subscribe
                                           : w::control_type::unsubscribe,
                           type, seq++);
        break;
      }
      case rec_frame: {
        w::frame_header h;
        if (bits & 4) {
          h.flags = w::frame_header::flag_control;
          h.type_id = w::first_control_type_id + c.byte();
        } else {
          h.type_id = pick_type(c, bits & 2);
        }
        auto payload = c.take(c.byte());
        h.payload_length = static_cast<uint32_t>(payload.size());
        h.sequence = seq++;
        auto at = out.size();
        out.resize(at + w::frame_header::size);
        h.write(out.data() + at);
        out.insert(out.end(), payload.begin(), payload.end());
        break;
      }
      case rec_message: {
        auto i = c.byte() % t::descriptor().types.size();
        size_t k = 0;
        fz::for_each_type([&](auto proto) {
          if (k++ == i)
            mycelium::encode_frame(proto, seq, out);
        });
        ++seq;
        break;
      }
      case rec_hello:
        append_hello(c, bits, seq, out);
        break;
      case rec_refuse: {
        w::refuse r;
        r.reason = static_cast<errc>(c.byte());
        auto text = c.take(c.byte());
        r.text.assign(text.begin(), text.end());
        w::encode_frame(out, r, seq++);
        break;
      }
      case rec_raw: {
        auto bytes = c.take(c.byte());
        out.insert(out.end(), bytes.begin(), bytes.end());
        break;
      }
      case rec_seq_jump:
        seq += static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(c.byte())));
        break;
    }
  }
  return out;
}

// -- one run --------------------------------------------------------------------

/// The other side reads what the fuzzed side wrote (its hello, a refusal):
/// it must establish the link and hear the same refusal, never an error.
/// An established side can still send, whatever it received: interest, a
/// heartbeat and data. write_data refuses a message over max_payload or of
/// another schema, appending nothing.
void send_after(side& s) {
  auto& out = s.out;
  auto size = out.size();
  if (s.proto.write_data(caf::make_message(std::string{"x"}), out) != errc::unknown_type
      || out.size() != size)
    s.rec.fail("write_data did not refuse a message outside the schema");
  t::price_request big{"ABCDEFGHIJKLMNOP"};
  auto big_size = fz::payload_of(big).size();
  auto e = s.proto.write_data(caf::make_message(big), out);
  if (big_size <= s.proto.max_payload() ? e != errc::none
                                        : e != errc::frame_too_large || out.size() != size)
    s.rec.fail("write_data and max_payload disagree", mycelium::to_string(e));
  if (s.proto.last_type_id() != t::price_request::type_id
      || s.proto.last_payload_size() != big_size)
    s.rec.fail("last_type_id / last_payload_size do not describe the last write_data");
  s.proto.write_interest(t::ping::type_id, true, out);
  s.proto.write_heartbeat(out);
  if (auto e2 = s.proto.write_data(caf::make_message(t::ping{42}), out); e2 != errc::none)
    s.rec.fail("write_data refused a small message", mycelium::to_string(e2));
  s.proto.write_interest(t::ping::type_id, false, out);
}

bool logged(const side& s, const std::string& entry) {
  const auto& log = s.rec.log();
  return std::find(log.begin(), log.end(), entry) != log.end();
}

/// Whether `bytes` (well-formed frames) hold an auth frame.
bool has_auth_frame(const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  w::frame_header h;
  while (w::frame_header::read(bytes.data() + off, bytes.size() - off, 1u << 20, h)
         == errc::none) {
    if (h.flags == w::frame_header::flag_control
        && h.type_id == static_cast<uint32_t>(w::control_type::auth))
      return true;
    off += w::frame_header::size + h.payload_length;
  }
  return false;
}

void check_output(side& fuzzed, side& peer, bool peer_established_before, bool secret) {
  if (peer.rec.terminal())
    peer.rec.fail("the correct peer closed during the handshake");
  bool sends = fuzzed.proto.current() == link_protocol::state::established;
  if (sends)
    send_after(fuzzed);
  bool sent_auth = has_auth_frame(fuzzed.out);
  // With a secret the peer needs the fuzzed side's auth frame, which answers
  // the nonce of the hello the fuzzed side accepted: the peer can verify it
  // only if that hello carried the peer's own nonce.
  bool answers_peer = fuzzed.proto.peer().nonce == peer.proto.local_hello().nonce;
  bool acceptable = !secret || peer_established_before || (sent_auth && answers_peer);
  bool open = pump(fuzzed, peer);
  if (peer.rec.errored())
    peer.rec.fail("the fuzzed side's output is a broken stream", peer.rec.error_text());
  if (!acceptable) {
    if (peer.rec.established())
      peer.rec.fail("established without an auth frame that answers its nonce");
    if (sent_auth) {
      // An answer to another nonce (e.g. a replayed one) must be refused.
      if (!peer.rec.refusing() || peer.rec.refusing()->reason != errc::auth_failed)
        peer.rec.fail("an auth frame answering another nonce was not refused with "
                      "auth_failed");
      return;
    }
    if (peer.rec.refusing())
      peer.rec.fail("the fuzzed side's hello was refused", peer.rec.refusing()->text);
  } else {
    if (!peer.rec.established())
      peer.rec.fail(peer_established_before ? "lost the established state"
                                            : "the fuzzed side's hello was not accepted");
    if (peer.rec.refusing())
      peer.rec.fail("the fuzzed side's hello was refused", peer.rec.refusing()->text);
  }
  auto ping_id = std::to_string(t::ping::type_id);
  if (sends
      && (!logged(peer, "on_interest " + ping_id + " add")
          || !logged(peer, "on_data " + ping_id + " " + fz::hex(fz::payload_of(t::ping{42})))
          || !logged(peer, "on_interest " + ping_id + " remove")))
    peer.rec.fail("what the established fuzzed side sent did not arrive");
  const w::refuse* sent = fuzzed.rec.refusing();
  if (sent == nullptr) {
    if (!open || peer.rec.refused())
      peer.rec.fail("the peer was refused although the fuzzed side did not refuse");
    return;
  }
  const w::refuse* heard = peer.rec.refused();
  if (heard == nullptr)
    peer.rec.fail("the fuzzed side's refusal did not arrive", sent->text);
  if (heard->reason != sent->reason)
    peer.rec.fail("the refusal arrived with another reason",
                  describe(sent->reason, sent->text) + " vs "
                    + describe(heard->reason, heard->text));
  bool text_ok = sent->text.size() <= 4096
                   ? heard->text == sent->text
                   : heard->text.size() <= 4096
                       && sent->text.compare(0, heard->text.size(), heard->text) == 0;
  if (!text_ok)
    peer.rec.fail("the refusal arrived with another text",
                  "sent \"" + sent->text + "\", heard \"" + heard->text + "\"");
}

/// Which log entry first differs (for the report of a violation).
std::string first_difference(const std::vector<std::string>& a,
                             const std::vector<std::string>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i])
    ++i;
  auto at = [&](const std::vector<std::string>& v) {
    return i < v.size() ? "\"" + v[i] + "\"" : std::string{"<end>"};
  };
  return "entry " + std::to_string(i) + ": first connection " + at(a)
         + ", after start() " + at(b);
}

void run(const uint8_t* data, size_t n) {
  cursor c{data, n};
  auto config = c.byte();
  auto m = static_cast<mode>(config & 3);
  bool secret = (config & cfg_secret) != 0;
  auto max_payload = max_payloads[(config >> cfg_max_payload_shift) & 3];
  bool restart = (config & cfg_restart) != 0;
  size_t k = c.byte() & 15;
  auto sizes = c.take(k);
  bool any_nonzero = false;
  for (auto s : sizes)
    any_nonzero = any_nonzero || s != 0;
  if (!any_nonzero)
    sizes.clear(); // only empty calls would never get through the stream
  bool handshake = m == mode_established || m == mode_framed_established;
  std::vector<uint8_t> built;
  const uint8_t* body = c.here();
  size_t body_size = c.left();
  if (m == mode_framed_established || m == mode_framed_raw) {
    built = build_stream(c, handshake ? (secret ? 3 : 2) : 1);
    body = built.data();
    body_size = built.size();
  }

  side fuzzed{"fuzzed", secret, max_payload, fuzzed_nonce};
  side peer{"peer", secret, w::default_max_payload, peer_nonce};
  auto connection = [&] {
    if (handshake) {
      // hello -> hello (+ auth) -> auth with a secret
      if (!pump(peer, fuzzed) || !pump(fuzzed, peer) || (secret && !pump(peer, fuzzed))
          || !fuzzed.rec.established() || !peer.rec.established())
        fuzzed.rec.fail("the handshake of two correct sides failed",
                        fuzzed.rec.error_text() + peer.rec.error_text());
    }
    bool open = true;
    size_t pos = 0;
    size_t next = 0;
    do {
      size_t len = body_size - pos;
      if (!sizes.empty()) {
        auto s = sizes[next++ % sizes.size()];
        if (s != 255)
          len = std::min<size_t>(s, len);
      }
      consume_checked(fuzzed, body + pos, len, open);
      pos += len;
    } while (pos < body_size);
    // A closed protocol stays closed; an open one ignores an empty read.
    consume_checked(fuzzed, body, 0, open);
    check_output(fuzzed, peer, handshake, secret);
  };
  connection();
  if (!restart)
    return;
  // start() begins a new connection on the same instances: the same input
  // must give the same callbacks and results as on fresh instances.
  auto fuzzed_log = fuzzed.rec.log();
  auto peer_log = peer.rec.log();
  fuzzed.restart();
  peer.restart();
  if (trace)
    std::fprintf(stderr, "-- start() on both sides, same input again\n");
  connection();
  if (fuzzed.rec.log() != fuzzed_log)
    fuzzed.rec.fail("after start(), the same input gives other results",
                    first_difference(fuzzed_log, fuzzed.rec.log()));
  if (peer.rec.log() != peer_log)
    peer.rec.fail("after start(), the same input gives other results",
                  first_difference(peer_log, peer.rec.log()));
}

// -- seed corpus ----------------------------------------------------------------

/// The frames of a session after the hello: interest, heartbeats and a data
/// frame of every type, sequence numbers from `seq` on.
void append_session(std::vector<uint8_t>& out, uint64_t& seq) {
  w::encode_interest(out, w::control_type::subscribe, t::ping::type_id, seq++);
  w::encode_heartbeat(out, seq++);
  mycelium::encode_frame(t::ping{7}, seq++, out);
  {
    t::order x;
    x.leg.venue = "XLON";
    x.leg.qty = 100;
    x.side = t::side::buy;
    x.px = 101.25;
    mycelium::encode_frame(x, seq++, out);
  }
  {
    t::texts x;
    x.name = "\xC3\xA9t\xC3\xA9";
    x.blob = {0, 1, 0xFF};
    mycelium::encode_frame(x, seq++, out);
  }
  {
    t::collections x;
    x.levels = {1.0, -0.0, 1e300};
    x.ids = {1, 2};
    x.flags = {true, false};
    x.side = t::side::sell;
    mycelium::encode_frame(x, seq++, out);
  }
  {
    t::all_scalars x;
    x.a_u64 = UINT64_MAX;
    x.a_i32 = -5;
    x.a_f32 = 1.5f;
    x.a_bool = true;
    mycelium::encode_frame(x, seq++, out);
  }
  mycelium::encode_frame(t::price_reply{"MSFT", 412.5}, seq++, out);
  w::encode_interest(out, w::control_type::unsubscribe, t::ping::type_id, seq++);
  w::encode_heartbeat(out, seq++);
}

/// A valid hello from "seed-peer" with the correct peer's nonce (and the
/// authentication announced, with a secret).
w::hello seed_hello(bool secret) {
  auto h = mycelium::make_hello(t::descriptor(), "seed-peer", "fuzz-peer", 4242);
  h.nonce = peer_nonce;
  if (secret)
    h.auth_scheme_id = static_cast<uint8_t>(w::auth_scheme::hmac_sha256);
  return h;
}

std::vector<uint8_t> input(uint8_t config, std::vector<uint8_t> sizes,
                           const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out{config, static_cast<uint8_t>(sizes.size())};
  out.insert(out.end(), sizes.begin(), sizes.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void write_seeds(const std::string& dir) {
  auto put = [&](const char* name, const std::vector<uint8_t>& bytes) {
    fz::write_file(prog, dir, std::string{"seed-"} + name, bytes);
  };
  // Raw: the peer's hello and a whole session, in one piece and in pieces.
  for (bool secret : {false, true}) {
    std::vector<uint8_t> body;
    auto h = seed_hello(secret);
    w::encode_frame(body, h, 1);
    uint64_t seq = 2;
    if (secret) // the answer to the fuzzed side's challenge
      w::encode_frame(body,
                      w::auth{mycelium::transports::make_auth_proof(fuzz_secret,
                                                                    fuzzed_nonce, h)},
                      seq++);
    append_session(body, seq);
    uint8_t cfg = mode_raw | (secret ? cfg_secret : 0);
    put(secret ? "raw-session-secret" : "raw-session", input(cfg, {}, body));
    if (!secret)
      put("raw-session-split-restart", input(cfg | cfg_restart, {1, 23, 0, 24, 7, 255}, body));
  }
  { // Raw: a refused hello (other schema digest) and a refusal from the peer.
    std::vector<uint8_t> body;
    auto h = seed_hello(false);
    h.schema_digest[0] ^= 1;
    h.types.erase(h.types.begin() + 3);
    w::encode_frame(body, h, 1);
    put("raw-hello-mismatch", input(mode_raw, {}, body));
    body.clear();
    w::encode_frame(body, seed_hello(false), 1);
    w::encode_frame(body, w::refuse{errc::auth_failed, "no entry"}, 2);
    put("raw-refused", input(mode_raw, {}, body));
  }
  { // Established: the session after the handshake, in pieces; and over a
    // small max_payload (the collections frame is too large for 64).
    std::vector<uint8_t> body;
    uint64_t seq = 2;
    append_session(body, seq);
    put("established-session", input(mode_established, {5, 30, 2}, body));
    std::vector<uint8_t> after_auth;
    seq = 3;
    append_session(after_auth, seq);
    put("established-session-secret", input(mode_established | cfg_secret, {7}, after_auth));
    put("established-max64",
        input(mode_established | (2 << cfg_max_payload_shift), {}, body));
  }
  { // Framed, established: one record of every kind.
    std::vector<uint8_t> body{
      rec_heartbeat,
      rec_interest | (1 << 3), 4,                  // subscribe order
      rec_message, 4,                              // order{}
      rec_frame, 5, 4, 0x08, 0, 1, 2,              // ping, bad payload
      rec_frame | (4 << 3), 5, 0,                  // control 0xFFFF0005
      rec_interest, 5,                             // unsubscribe order
      rec_refuse, 4, 3, 'b', 'y', 'e',             // peer refuses
    };
    put("framed-established", input(mode_framed_established, {3}, body));
  }
  { // Framed, raw: a hello announcing authentication with the peer's nonce
    // and a valid auth frame, then a session.
    std::vector<uint8_t> body{rec_hello | (8 << 3), 4, 'n', 'o', 'd', 'e', 1, 0, 0, 0};
    body.insert(body.end(), peer_nonce.begin(), peer_nonce.end());
    std::vector<uint8_t> rest{
      rec_interest | (1 << 3), 0,
      rec_message, 0, rec_message, 1, rec_message, 2,
      rec_heartbeat,
      rec_seq_jump, 1,                             // a gap
      rec_heartbeat,
    };
    body.insert(body.end(), rest.begin(), rest.end());
    put("framed-raw-secret", input(mode_framed_raw | cfg_secret, {}, body));
  }
  { // Replays: an auth frame answering another nonce, a hello without one,
    // and frames before the auth frame.
    std::vector<uint8_t> body{rec_hello | (8 << 3), 1, 'r', 2, 0, 0, 0};
    for (uint8_t i = 0; i < 16; ++i)
      body.push_back(static_cast<uint8_t>(0xA0 + (i ^ 1)));
    put("framed-raw-secret-other-nonce", input(mode_framed_raw | cfg_secret, {}, body));
    std::vector<uint8_t> zero{rec_hello | (8 << 3), 1, 'z', 3, 0, 0, 0};
    zero.insert(zero.end(), 16, 0);
    put("framed-raw-secret-no-nonce", input(mode_framed_raw | cfg_secret, {}, zero));
    // scheme 1 announced (bit 4), no auth frame (0 proof bytes), a heartbeat
    std::vector<uint8_t> early{rec_hello | (16 << 3), 1, 'e', 4, 0, 0, 0};
    early.insert(early.end(), peer_nonce.begin(), peer_nonce.end());
    early.push_back(1); // auth_scheme
    early.push_back(0); // proof length
    early.push_back(rec_heartbeat);
    put("framed-raw-no-auth", input(mode_framed_raw | cfg_secret, {}, early));
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  fz::require_all_types_covered(prog);
  if (auto dir = fz::flag_value(*argc, *argv, "write-seeds")) {
    write_seeds(dir);
    std::exit(0);
  }
  if (auto v = fz::flag_value(*argc, *argv, "trace"))
    trace = std::strcmp(v, "0") != 0;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
  run(data, n);
  return 0;
}
