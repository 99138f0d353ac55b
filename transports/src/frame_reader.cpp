#include "mycelium/transports/frame_reader.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace mycelium::transports {

std::string describe_frame(const wire::frame_header& h) {
  if ((h.flags & wire::frame_header::flag_control) == 0)
    return "data frame of type " + std::to_string(h.type_id);
  static constexpr const char* names[] = {"hello",     "refuse",  "subscribe",
                                          "unsubscribe", "heartbeat", "goodbye",
                                          "shm_attach", "auth"};
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", h.type_id);
  auto index = h.type_id - wire::first_control_type_id;
  if (h.type_id > wire::first_control_type_id && index <= std::size(names))
    return std::string{"control frame "} + names[index - 1] + " (" + hex + ")";
  return std::string{"control frame of unknown type "} + hex;
}

errc frame_reader::next(const uint8_t* p, size_t n, bool exact,
                        wire::frame_header& h, const std::string& peer,
                        std::string& why) {
  auto limit = std::max(max_payload_, control_payload_limit);
  auto e = wire::frame_header::read(p, n, limit, h);
  if (e == errc::truncated && !exact)
    return e; // wait for the rest of the frame
  if (e == errc::none && exact && n != wire::frame_header::size + h.payload_length)
    e = errc::bad_frame_header; // a record holds exactly one frame
  if (e != errc::none) {
    why = "bad frame header from " + peer + ": " + to_string(e);
    return e;
  }
  if ((h.flags & wire::frame_header::flag_control) == 0 && h.payload_length > max_payload_) {
    why = "frame of " + std::to_string(h.payload_length) + " bytes from " + peer
          + " exceeds max_payload "
          + std::to_string(max_payload_) + "; configure the same max_payload on both sides";
    return errc::frame_too_large;
  }
  if (h.sequence != rx_seq_ + 1) {
    why = "sequence gap from " + peer + ": expected " + std::to_string(rx_seq_ + 1) + ", got "
          + std::to_string(h.sequence);
    return errc::sequence_gap;
  }
  rx_seq_ = h.sequence;
  return errc::none;
}

namespace {

struct value_sink {
  link_listener* l;
  const schema_descriptor* schema;
};

} // namespace

errc frame_reader::dispatch(const wire::frame_header& h, const uint8_t* payload,
                            link_listener& l, const std::string& peer,
                            std::string& why) {
  if ((h.flags & wire::frame_header::flag_control) == 0) {
    // Generated decoders refuse foreign ids themselves; a raw schema's
    // decoder takes any id, so the id is checked against its list here.
    if (schema_->index_of == nullptr && schema_->find(h.type_id) == nullptr) {
      l.on_bad_frame(errc::unknown_type,
                     "undecodable frame of type " + std::to_string(h.type_id) + " (sequence "
                       + std::to_string(h.sequence) + ") from " + peer + ": "
                       + to_string(errc::unknown_type));
      return errc::none;
    }
    value_sink sink{&l, schema_};
    auto e = schema_->visit(h.type_id, payload, h.payload_length, &sink,
                            [](void* ctx, uint32_t type_id, void* value) {
                              auto* s = static_cast<value_sink*>(ctx);
                              s->l->on_value(type_id, value, s->schema->box);
                            });
    if (e != errc::none)
      l.on_bad_frame(e, "undecodable frame of type " + std::to_string(h.type_id)
                          + " (sequence " + std::to_string(h.sequence) + ") from "
                          + peer + ": " + to_string(e));
    return errc::none;
  }
  auto type = static_cast<wire::control_type>(h.type_id);
  if (type != wire::control_type::subscribe && type != wire::control_type::unsubscribe) {
    why = "unexpected " + describe_frame(h) + " from " + peer + " on the data path";
    return errc::protocol_violation;
  }
  uint32_t id = 0;
  if (auto e = wire::decode_interest(payload, h.payload_length, id); e != errc::none) {
    why = "bad interest frame from " + peer + ": " + to_string(e);
    return e;
  }
  if (schema_->find(id) == nullptr) {
    l.on_bad_frame(errc::unknown_type,
                   "peer " + peer + " subscribed to unknown type id " + std::to_string(id));
    return errc::none;
  }
  l.on_interest(id, type == wire::control_type::subscribe);
  return errc::none;
}

} // namespace mycelium::transports
