#include "mycelium/transports/link_protocol.hpp"

#include <algorithm>

#include "mycelium/transports/auth.hpp"

namespace mycelium::transports {

namespace {

/// Control frames (a hello lists every type) may exceed a small data limit.
constexpr uint32_t control_payload_limit = 1u << 20;

std::string describe(const wire::hello& h) {
  return "node '" + h.node + "' service '" + h.service + "' (pid "
         + std::to_string(h.pid) + ")";
}

} // namespace

link_protocol::listener::~listener() = default;

errc link_protocol::listener::on_shm_attach(const wire::shm_attach&,
                                            std::string& why) {
  why = "the peer offered shared memory on a link that is not a shared-memory "
        "link: configure the same link kind on both sides";
  return errc::protocol_violation;
}

link_protocol::link_protocol(schema_descriptor schema, link_identity self,
                             std::string secret, uint32_t max_payload)
  : schema_(std::move(schema)), self_(std::move(self)),
    secret_(std::move(secret)), max_payload_(max_payload) {
}

std::string link_protocol::peer_name() const {
  return state_ == state::awaiting_hello && peer_.node.empty() ? "<no hello yet>"
                                                               : describe(peer_);
}

void link_protocol::start(std::vector<uint8_t>& out) {
  state_ = state::awaiting_hello;
  tx_seq_ = 0;
  rx_seq_ = 0;
  pending_.clear();
  peer_ = wire::hello{};
  local_ = make_hello(schema_, self_.node, self_.service, self_.pid);
  random_nonce(local_.nonce);
  if (!secret_.empty())
    local_.auth_proof = make_auth_proof(secret_, local_);
  wire::encode_frame(out, local_, ++tx_seq_);
}

errc link_protocol::write_data(const caf::message& msg,
                               std::vector<uint8_t>& out) {
  auto start = out.size();
  out.resize(start + wire::frame_header::size);
  uint32_t type_id = 0;
  if (!schema_.encode(msg, out, type_id)) {
    out.resize(start);
    return errc::unknown_type;
  }
  auto len = out.size() - start - wire::frame_header::size;
  last_type_id_ = type_id;
  last_payload_size_ = len;
  if (len > max_payload_) {
    out.resize(start);
    return errc::frame_too_large;
  }
  wire::frame_header h;
  h.payload_length = static_cast<uint32_t>(len);
  h.type_id = type_id;
  h.sequence = ++tx_seq_;
  h.write(out.data() + start);
  return errc::none;
}

void link_protocol::write_interest(uint32_t type_id, bool add,
                                   std::vector<uint8_t>& out) {
  wire::encode_interest(out,
                        add ? wire::control_type::subscribe
                            : wire::control_type::unsubscribe,
                        type_id, ++tx_seq_);
}

void link_protocol::write_heartbeat(std::vector<uint8_t>& out) {
  wire::encode_heartbeat(out, ++tx_seq_);
}

void link_protocol::write_shm_attach(const wire::shm_attach& x,
                                     std::vector<uint8_t>& out) {
  wire::encode_frame(out, x, ++tx_seq_);
}

void link_protocol::write_goodbye(std::vector<uint8_t>& out) {
  wire::encode_goodbye(out, ++tx_seq_);
}

bool link_protocol::fail(errc code, const std::string& text, listener& l) {
  state_ = state::closed;
  pending_.clear();
  l.on_error(code, text);
  return false;
}

bool link_protocol::consume(const uint8_t* data, size_t n,
                            std::vector<uint8_t>& out, listener& l) {
  if (state_ == state::closed)
    return false;
  const uint8_t* p = data;
  size_t avail = n;
  if (!pending_.empty()) {
    pending_.insert(pending_.end(), data, data + n);
    p = pending_.data();
    avail = pending_.size();
  }
  size_t used = 0;
  auto limit = std::max(max_payload_, control_payload_limit);
  while (avail - used >= wire::frame_header::size) {
    wire::frame_header h;
    auto e = wire::frame_header::read(p + used, avail - used, limit, h);
    if (e == errc::truncated)
      break; // wait for the rest of the payload
    if (e != errc::none)
      return fail(e, "corrupt frame header from " + peer_name() + ": "
                       + to_string(e),
                  l);
    if ((h.flags & wire::frame_header::flag_control) == 0
        && h.payload_length > max_payload_)
      return fail(errc::frame_too_large,
                  "frame of " + std::to_string(h.payload_length)
                    + " bytes from " + peer_name() + " exceeds max_payload "
                    + std::to_string(max_payload_)
                    + "; configure the same max_payload on both sides",
                  l);
    if (h.sequence != rx_seq_ + 1)
      return fail(errc::sequence_gap,
                  "sequence gap from " + peer_name() + ": expected "
                    + std::to_string(rx_seq_ + 1) + ", got "
                    + std::to_string(h.sequence),
                  l);
    rx_seq_ = h.sequence;
    if (!handle(h, p + used + wire::frame_header::size, out, l))
      return false;
    used += wire::frame_header::size + h.payload_length;
  }
  if (p == pending_.data()) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(used));
  } else if (used < avail) {
    pending_.assign(p + used, p + avail);
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
  if (state_ == state::awaiting_hello) {
    if (!control || type != wire::control_type::hello)
      return fail(errc::protocol_violation,
                  "peer sent frame type " + std::to_string(h.type_id)
                    + " before its hello",
                  l);
    wire::hello remote;
    if (auto e = wire::decode(payload, h.payload_length, remote);
        e != errc::none) {
      wire::refuse r{e, std::string{"undecodable hello: "} + to_string(e)};
      wire::encode_frame(out, r, ++tx_seq_);
      state_ = state::closed;
      l.on_refusing(r);
      return false;
    }
    peer_ = remote;
    auto r = wire::check_hello(local_, remote);
    if (r.reason == errc::none && !secret_.empty()) {
      if (remote.auth_proof.empty())
        r = {errc::auth_failed,
             "peer " + describe(remote)
               + " sent no authentication proof, but a secret is configured "
                 "here: configure the same secret on both sides"};
      else if (!check_auth_proof(secret_, remote))
        r = {errc::auth_failed,
             "authentication proof of peer " + describe(remote)
               + " does not match: the two sides use different secrets"};
    }
    if (r.reason != errc::none) {
      wire::encode_frame(out, r, ++tx_seq_);
      state_ = state::closed;
      l.on_refusing(r);
      return false;
    }
    state_ = state::established;
    l.on_established(peer_);
    return true;
  }
  if (control) {
    switch (type) {
      case wire::control_type::subscribe:
      case wire::control_type::unsubscribe: {
        uint32_t id = 0;
        if (auto e = wire::decode_interest(payload, h.payload_length, id);
            e != errc::none)
          return fail(e, "bad interest frame from " + peer_name() + ": "
                           + to_string(e),
                      l);
        if (schema_.find(id) == nullptr) {
          l.on_bad_frame(errc::unknown_type,
                         "peer " + peer_name() + " subscribed to unknown type id "
                           + std::to_string(id));
          return true;
        }
        l.on_interest(id, type == wire::control_type::subscribe);
        return true;
      }
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
                    "unexpected control frame " + std::to_string(h.type_id)
                      + " from " + peer_name(),
                    l);
    }
  }
  caf::message msg;
  if (auto e = schema_.decode(h.type_id, payload, h.payload_length, msg);
      e != errc::none) {
    l.on_bad_frame(e, "undecodable frame of type " + std::to_string(h.type_id)
                        + " (sequence " + std::to_string(h.sequence)
                        + ") from " + peer_name() + ": " + to_string(e));
    return true;
  }
  l.on_data(h.type_id, std::move(msg));
  return true;
}

} // namespace mycelium::transports
