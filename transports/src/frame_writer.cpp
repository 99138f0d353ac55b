#include "mycelium/transports/frame_writer.hpp"

namespace mycelium::transports {

errc frame_writer::finish_data(uint32_t type_id, size_t start,
                               std::vector<uint8_t>& out) {
  auto len = out.size() - start - wire::frame_header::size;
  last_type_id_ = type_id;
  last_payload_size_ = len;
  if (len > max_payload_) {
    out.resize(start);
    return errc::frame_too_large;
  }
  seal(type_id, static_cast<uint32_t>(len)).write(out.data() + start);
  return errc::none;
}

errc frame_writer::write_value(uint32_t type_id, const void* value,
                               std::vector<uint8_t>& out) {
  auto start = out.size();
  out.resize(start + wire::frame_header::size);
  wire::writer w{out};
  if (!schema_->encode_value(type_id, value, w)) {
    out.resize(start);
    last_type_id_ = type_id;
    return errc::unknown_type;
  }
  return finish_data(type_id, start, out);
}

errc frame_writer::write_message(const caf::message& msg, std::vector<uint8_t>& out) {
  auto start = out.size();
  out.resize(start + wire::frame_header::size);
  uint32_t type_id = 0;
  if (!schema_->encode(msg, out, type_id)) {
    out.resize(start);
    return errc::unknown_type;
  }
  return finish_data(type_id, start, out);
}

errc frame_writer::encode_payload(uint32_t type_id, const void* value,
                                  std::vector<uint8_t>& payload) const {
  payload.clear();
  wire::writer w{payload};
  if (!schema_->encode_value(type_id, value, w))
    return errc::unknown_type;
  return payload.size() > max_payload_ ? errc::frame_too_large : errc::none;
}

errc frame_writer::encode_payload_into(uint32_t type_id, const void* value,
                                       uint8_t* dst, size_t capacity,
                                       size_t& n) const {
  wire::writer w{dst, capacity};
  if (!schema_->encode_value(type_id, value, w))
    return errc::unknown_type;
  n = w.size();
  if (n > max_payload_)
    return errc::frame_too_large;
  return w.overflowed() ? errc::truncated : errc::none;
}

void frame_writer::write_interest(uint32_t type_id, bool add,
                                  std::vector<uint8_t>& out) {
  wire::encode_interest(out,
                        add ? wire::control_type::subscribe
                            : wire::control_type::unsubscribe,
                        type_id, ++tx_seq_);
}

void frame_writer::write_heartbeat(std::vector<uint8_t>& out) {
  wire::encode_heartbeat(out, ++tx_seq_);
}

void frame_writer::write_goodbye(std::vector<uint8_t>& out) {
  wire::encode_goodbye(out, ++tx_seq_);
}

} // namespace mycelium::transports
