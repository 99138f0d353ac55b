#include "mycelium/transports/link_protocol.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "mycelium/transports/auth.hpp"

namespace mycelium::transports {

namespace {

std::string describe(const wire::hello& h) {
  return "node '" + h.node + "' service '" + h.service + "' (pid "
         + std::to_string(h.pid) + ")";
}

} // namespace

link_listener::~link_listener() = default;

void link_listener::on_value(uint32_t type_id, void* value,
                             caf::message (*box)(uint32_t, void*)) {
  on_data(type_id, box(type_id, value));
}

errc link_listener::on_shm_attach(const wire::shm_attach&, std::string& why) {
  why = "the peer offered shared memory on a link that is not a shared-memory "
        "link: configure the same link kind on both sides";
  return errc::protocol_violation;
}

link_protocol::link_protocol(schema_descriptor schema, link_identity self,
                             std::string secret, uint32_t max_payload)
  : schema_(std::move(schema)), self_(std::move(self)),
    secret_(std::move(secret)), max_payload_(max_payload),
    writer_(&schema_, max_payload), reader_(&schema_, max_payload),
    peer_text_("<no hello yet>") {
}

std::string link_protocol::peer_name() const {
  return state_ == state::awaiting_hello && peer_.node.empty() ? "<no hello yet>"
                                                               : describe(peer_);
}

void link_protocol::start(std::vector<uint8_t>& out) {
  state_ = state::awaiting_hello;
  writer_.reset();
  reader_.reset();
  pending_.clear();
  peer_ = wire::hello{};
  peer_text_ = "<no hello yet>";
  local_ = make_hello(schema_, self_.node, self_.service, self_.pid);
  if (nonce_source_)
    nonce_source_(local_.nonce);
  else
    random_nonce(local_.nonce);
  if (!secret_.empty())
    local_.auth_scheme_id = static_cast<uint8_t>(wire::auth_scheme::hmac_sha256);
  writer_.write_control(local_, out);
}

void link_protocol::write_interest(uint32_t type_id, bool add,
                                   std::vector<uint8_t>& out) {
  writer_.write_interest(type_id, add, out);
}

void link_protocol::write_heartbeat(std::vector<uint8_t>& out) {
  writer_.write_heartbeat(out);
}

void link_protocol::write_shm_attach(const wire::shm_attach& x,
                                     std::vector<uint8_t>& out) {
  writer_.write_control(x, out);
}

void link_protocol::write_goodbye(std::vector<uint8_t>& out) {
  writer_.write_goodbye(out);
}

bool link_protocol::fail(errc code, const std::string& text, listener& l) {
  state_ = state::closed;
  pending_.clear();
  l.on_error(code, text);
  return false;
}

bool link_protocol::refuse_peer(errc code, std::string text,
                                std::vector<uint8_t>& out, listener& l) {
  wire::refuse r{code, std::move(text)};
  writer_.write_control(r, out);
  state_ = state::closed;
  pending_.clear();
  l.on_refusing(r);
  return false;
}

bool link_protocol::reject(errc code, std::string text,
                           std::vector<uint8_t>& out, listener& l) {
  if (state_ == state::established)
    return fail(code, text, l);
  return refuse_peer(code, std::move(text), out, l);
}

bool link_protocol::consume(const uint8_t* data, size_t n,
                            std::vector<uint8_t>& out, listener& l) {
  if (state_ == state::closed)
    return false;
  const uint8_t* p = data;
  size_t avail = n;
  bool from_pending = !pending_.empty();
  if (from_pending) {
    pending_.append(data, n);
    p = pending_.data();
    avail = pending_.size();
  }
  size_t used = 0;
  std::string why;
  while (avail - used >= wire::frame_header::size) {
    wire::frame_header h;
    auto e = reader_.next(p + used, avail - used, false, h, peer_text_, why);
    if (e == errc::truncated)
      break; // wait for the rest of the payload
    if (e != errc::none)
      return reject(e, std::move(why), out, l);
    if (!handle(h, p + used + wire::frame_header::size, out, l))
      return false;
    used += wire::frame_header::size + h.payload_length;
  }
  if (from_pending) {
    pending_.consume(used);
  } else if (used < avail) {
    pending_.assign(p + used, avail - used);
  }
  return true;
}

bool link_protocol::handle(const wire::frame_header& h, const uint8_t* payload,
                           std::vector<uint8_t>& out, listener& l) {
  bool control = (h.flags & wire::frame_header::flag_control) != 0;
  auto type = static_cast<wire::control_type>(h.type_id);
  if (control && type == wire::control_type::refuse) {
    wire::refuse r;
    if (auto e = wire::decode(payload, h.payload_length, r); e != errc::none)
      return fail(e, std::string{"undecodable refusal from peer: "} + to_string(e), l);
    state_ = state::closed;
    l.on_refused(r);
    return false;
  }
  if (state_ == state::awaiting_hello)
    return handle_hello(h, payload, out, l);
  if (state_ == state::awaiting_auth)
    return handle_auth(h, payload, out, l);
  if (frame_reader::is_data_path(h)) {
    std::string why;
    if (auto e = reader_.dispatch(h, payload, l, peer_text_, why); e != errc::none)
      return fail(e, why, l);
    return true;
  }
  switch (type) {
    case wire::control_type::heartbeat:
      return true;
    case wire::control_type::shm_attach: {
      wire::shm_attach x;
      if (auto e = wire::decode(payload, h.payload_length, x); e != errc::none)
        return fail(e, "bad shm_attach frame from " + peer_name() + ": "
                         + to_string(e),
                    l);
      std::string why;
      if (auto e = l.on_shm_attach(x, why); e != errc::none)
        return fail(e, why, l);
      return true;
    }
    case wire::control_type::goodbye:
      state_ = state::closed;
      pending_.clear();
      l.on_goodbye();
      return false;
    default:
      return fail(errc::protocol_violation,
                  "unexpected " + describe_frame(h) + " from " + peer_name()
                    + " on an established link",
                  l);
  }
}

bool link_protocol::handle_hello(const wire::frame_header& h,
                                 const uint8_t* payload,
                                 std::vector<uint8_t>& out, listener& l) {
  bool control = (h.flags & wire::frame_header::flag_control) != 0;
  if (!control || h.type_id != static_cast<uint32_t>(wire::control_type::hello))
    return refuse_peer(errc::protocol_violation,
                       "peer sent a " + describe_frame(h)
                         + " before its hello: the first frame on a link must "
                           "be a hello (docs/wire-protocol.md section 7.3)",
                       out, l);
  wire::hello remote;
  auto e = wire::decode(payload, h.payload_length, remote);
  if (e != errc::none && e != errc::bad_magic)
    return refuse_peer(e,
                       std::string{"undecodable hello: "} + to_string(e)
                         + "; the peer does not speak Mycelium wire protocol "
                           "version "
                         + std::to_string(wire::protocol_version)
                         + " or sent a corrupt hello",
                       out, l);
  // A bad magic is decided by check_hello, whose text names the peer with
  // whatever node, service and pid its hello carried. A hello without the
  // magic field decodes with the default magic: make it fail there too
  // (docs/wire-protocol.md section 7.1; found by the Python client's tests).
  if (e == errc::bad_magic && remote.magic == wire::hello_magic)
    remote.magic = 0;
  peer_ = remote;
  peer_text_ = describe(peer_);
  auto r = wire::check_hello(local_, remote);
  if (r.reason == errc::none)
    r = check_auth_hello(remote);
  if (r.reason != errc::none)
    return refuse_peer(r.reason, std::move(r.text), out, l);
  if (secret_.empty()) {
    state_ = state::established;
    l.on_established(peer_);
    return true;
  }
  // Our answer to the peer's challenge; the peer's answer to ours decides.
  writer_.write_control(wire::auth{make_auth_proof(secret_, remote.nonce, local_)}, out);
  state_ = state::awaiting_auth;
  return true;
}

wire::refuse link_protocol::check_auth_hello(const wire::hello& remote) const {
  using wire::auth_scheme;
  auto scheme = remote.auth_scheme_id;
  auto who = "peer " + describe(remote);
  if (secret_.empty()) {
    if (scheme == static_cast<uint8_t>(auth_scheme::none))
      return {};
    return {errc::auth_failed,
            who + " has a shared secret configured (its hello asks for "
                  "authentication), but none is configured here: configure "
                  "the same secret on both sides"};
  }
  if (scheme == static_cast<uint8_t>(auth_scheme::none))
    return {errc::auth_failed,
            who + " sent no authentication proof (its hello announces no "
                  "shared secret), but a secret is configured here: configure "
                  "the same secret on both sides"};
  if (scheme != static_cast<uint8_t>(auth_scheme::hmac_sha256))
    return {errc::auth_failed,
            who + " asks for authentication scheme " + std::to_string(scheme)
              + ", which this build does not know (it knows 1, hmac_sha256): "
                "run the same Mycelium version on both sides"};
  if (remote.nonce == wire::digest128{})
    return {errc::auth_failed,
            who + " sent no nonce (hello field 9 missing or all zero), so its "
                  "proof could be replayed: with a secret, every hello must "
                  "carry 16 fresh random bytes"};
  if (remote.nonce == local_.nonce)
    return {errc::auth_failed,
            who + " sent back the nonce of our own hello: a reflected "
                  "handshake is refused"};
  return {};
}

bool link_protocol::handle_auth(const wire::frame_header& h,
                                const uint8_t* payload,
                                std::vector<uint8_t>& out, listener& l) {
  bool control = (h.flags & wire::frame_header::flag_control) != 0;
  if (!control || h.type_id != static_cast<uint32_t>(wire::control_type::auth))
    return refuse_peer(errc::protocol_violation,
                       "peer " + peer_name() + " sent a " + describe_frame(h)
                         + " before its authentication proof: with a shared "
                           "secret, the frame after the hello must be an auth "
                           "frame (docs/wire-protocol.md section 9.4)",
                       out, l);
  wire::auth a;
  if (auto e = wire::decode(payload, h.payload_length, a); e != errc::none)
    return refuse_peer(e,
                       "undecodable auth frame from " + peer_name() + ": "
                         + to_string(e) + "; the proof must be 32 bytes in field 1",
                       out, l);
  if (!check_auth_proof(secret_, local_.nonce, peer_, a.proof))
    return refuse_peer(errc::auth_failed,
                       "authentication proof of peer " + peer_name()
                         + " does not match: the two sides use different "
                           "secrets (or the proof was replayed from another "
                           "connection)",
                       out, l);
  state_ = state::established;
  l.on_established(peer_);
  return true;
}

} // namespace mycelium::transports
