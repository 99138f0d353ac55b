// mycelium-py-decode-oracle: the C++ decoder as an oracle for the Python
// decoder (tests/python/test_differential.py). Reads one input per line on
// stdin, `<kind> <hex>`, and answers one line per input on stdout:
//
//   ok <hex>        it decoded; <hex> is what the C++ encoder writes for the
//                   decoded value
//   error <errc>    it did not; <errc> as mycelium::to_string names it
//
// Kinds: `frame` (a data frame: decode_frame with the test schema and the
// default size limit, re-encoded with the same sequence), and the control
// payloads `hello`, `refuse`, `auth`, `interest` (wire::decode /
// decode_interest; re-encoded as the payload of the same control frame).
//
// Single-threaded; exits 0 at EOF, 2 on a malformed line.
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

namespace mw = mycelium::wire;

/// Decodes a control payload of `kind`; on success `out` is the payload the
/// C++ encoder writes for the decoded value.
mycelium::errc control(const std::string& kind, const std::vector<uint8_t>& in,
                       std::vector<uint8_t>& out) {
  std::vector<uint8_t> frame;
  mycelium::errc e = mycelium::errc::none;
  if (kind == "hello") {
    mw::hello h;
    e = mw::decode(in.data(), in.size(), h);
    if (e == mycelium::errc::none)
      mw::encode_frame(frame, h, 1);
  } else if (kind == "refuse") {
    mw::refuse r;
    e = mw::decode(in.data(), in.size(), r);
    if (e == mycelium::errc::none)
      mw::encode_frame(frame, r, 1);
  } else if (kind == "auth") {
    mw::auth a;
    e = mw::decode(in.data(), in.size(), a);
    if (e == mycelium::errc::none)
      mw::encode_frame(frame, a, 1);
  } else {
    uint32_t id = 0;
    e = mw::decode_interest(in.data(), in.size(), id);
    if (e == mycelium::errc::none)
      mw::encode_interest(frame, mw::control_type::subscribe, id, 1);
  }
  if (e == mycelium::errc::none)
    out.assign(frame.begin() + mw::frame_header::size, frame.end());
  return e;
}

} // namespace

int main() {
  const auto& d = mycelium::test::descriptor();
  std::string line;
  std::vector<uint8_t> in;
  std::vector<uint8_t> out;
  while (std::getline(std::cin, line)) {
    auto space = line.find(' ');
    auto kind = space == std::string::npos ? std::string{} : line.substr(0, space);
    bool known = kind == "frame" || kind == "hello" || kind == "refuse" || kind == "auth"
                 || kind == "interest";
    if (!known || !from_hex(line.substr(space + 1), in)) {
      std::cerr << "mycelium-py-decode-oracle: expected '<frame|hello|refuse|auth|interest> <hex>', got: "
                << line.substr(0, 80) << "\n";
      return 2;
    }
    if (kind != "frame") {
      auto e = control(kind, in, out);
      if (e != mycelium::errc::none)
        std::cout << "error " << mycelium::to_string(e) << "\n";
      else
        std::cout << "ok " << to_hex(out) << "\n";
      continue;
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
