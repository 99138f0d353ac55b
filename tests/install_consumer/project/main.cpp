// Encodes one message of the generated schema into a frame, decodes the frame
// with the schema descriptor and compares. Prints OK and exits 0 only if the
// round trip gives back the same value.
#include <cstdio>
#include <vector>

#include "consumer.hpp"

int main() {
  using namespace consumer::demo;
  tick x;
  x.symbol = "ACME";
  x.px = 101.25;
  x.qty = -42;

  std::vector<uint8_t> frame;
  mycelium::encode_frame(x, 1, frame);

  mycelium::wire::frame_header h;
  caf::message msg;
  auto err = mycelium::decode_frame(descriptor(), frame.data(), frame.size(),
                                    mycelium::wire::default_max_payload, h, msg);
  if (err != mycelium::errc::none) {
    std::printf("FAIL: decode_frame: %s\n", mycelium::to_string(err));
    return 1;
  }
  if (h.type_id != tick::type_id || h.sequence != 1 || msg.size() != 1
      || !msg.match_element<tick>(0)) {
    std::printf("FAIL: decoded frame has type id %u, sequence %llu\n",
                static_cast<unsigned>(h.type_id),
                static_cast<unsigned long long>(h.sequence));
    return 1;
  }
  const auto& y = msg.get_as<tick>(0);
  if (y != x) {
    std::printf("FAIL: round trip changed the value: symbol '%s' px %g qty %d\n",
                y.symbol.c_str(), y.px, static_cast<int>(y.qty));
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
