// mycelium-py-decode-oracle: the C++ decoder as an oracle for the Python
// decoder (tests/python/test_differential.py). Reads one frame per line on
// stdin, as hex, and answers one line per frame on stdout:
//
//   ok <hex>        the frame decoded (decode_frame with the test schema and
//                   the default size limit); <hex> is the frame re-encoded
//                   by the generated C++ encoder with the same sequence
//   error <errc>    it did not; <errc> as mycelium::to_string names it
//
// Single-threaded; exits 0 at EOF, 2 on a line that is not hex.
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "mycelium/codec.hpp"
#include "test_messages.hpp"

namespace {

/// Parses an even-length lower- or upper-case hex string; false otherwise.
bool from_hex(const std::string& s, std::vector<uint8_t>& out) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  if (s.size() % 2 != 0)
    return false;
  out.clear();
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = nibble(s[i]);
    int lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return true;
}

std::string to_hex(const std::vector<uint8_t>& v) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(v.size() * 2);
  for (auto b : v) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

/// Where the visitor re-encodes the decoded value.
struct reencode {
  const mycelium::schema_descriptor* d;
  std::vector<uint8_t>* out;
};

} // namespace

int main() {
  const auto& d = mycelium::test::descriptor();
  std::string line;
  std::vector<uint8_t> in;
  std::vector<uint8_t> out;
  while (std::getline(std::cin, line)) {
    if (!from_hex(line, in)) {
      std::cerr << "mycelium-py-decode-oracle: line is not hex: " << line.substr(0, 80) << "\n";
      return 2;
    }
    mycelium::wire::frame_header h;
    auto e = mycelium::wire::frame_header::read(in.data(), in.size(),
                                                mycelium::wire::default_max_payload, h);
    if (e == mycelium::errc::none && (h.flags & mycelium::wire::frame_header::flag_control))
      e = mycelium::errc::unknown_type;
    out.assign(mycelium::wire::frame_header::size, 0);
    if (e == mycelium::errc::none) {
      reencode ctx{&d, &out};
      e = d.visit(h.type_id, in.data() + mycelium::wire::frame_header::size, h.payload_length,
                  &ctx, [](void* c, uint32_t type_id, void* value) {
                    auto* r = static_cast<reencode*>(c);
                    mycelium::wire::writer w{*r->out};
                    r->d->encode_value(type_id, value, w);
                  });
    }
    if (e != mycelium::errc::none) {
      std::cout << "error " << mycelium::to_string(e) << "\n";
      continue;
    }
    h.payload_length = static_cast<uint32_t>(out.size() - mycelium::wire::frame_header::size);
    h.write(out.data());
    std::cout << "ok " << to_hex(out) << "\n";
  }
  return 0;
}
