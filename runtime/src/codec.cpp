#include "mycelium/codec.hpp"

namespace mycelium {

errc decode_frame(const schema_descriptor& d, const uint8_t* data, size_t n,
                  uint32_t max_payload, wire::frame_header& header,
                  caf::message& out) {
  if (auto e = wire::frame_header::read(data, n, max_payload, header);
      e != errc::none)
    return e;
  if (header.flags & wire::frame_header::flag_control)
    return errc::unknown_type; // control frames belong to the link layer
  return d.decode(header.type_id, data + wire::frame_header::size,
                  header.payload_length, out);
}

wire::hello make_hello(const schema_descriptor& d, std::string node,
                       std::string service, uint32_t pid) {
  wire::hello h;
  h.schema_digest = d.digest;
  h.node = std::move(node);
  h.service = std::move(service);
  h.pid = pid;
  h.types = d.types;
  return h;
}

} // namespace mycelium
