#include "mycelium/wire/handshake.hpp"

#include <algorithm>
#include <map>

#include "mycelium/wire/tlv.hpp"

namespace mycelium::wire {

namespace {

constexpr size_t max_name = 255;
constexpr size_t max_types = 65535;
constexpr size_t max_proof = 256;
constexpr size_t max_text = 4096;

/// Records field `fid` in `seen`; false if it was there already. Control
/// frames use ids below 32.
bool first_time(uint32_t& seen, uint16_t fid) {
  if (fid >= 32)
    return true;
  if (seen & (1u << fid))
    return false;
  seen |= 1u << fid;
  return true;
}

/// Cuts `s` to at most `n` bytes without splitting a UTF-8 sequence.
std::string clip(const std::string& s, size_t n) {
  if (s.size() <= n)
    return s;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80)
    --n;
  return s.substr(0, n);
}

/// Runs `f(field_id, wire_type)` for every field of a control payload,
/// rejecting duplicates of ids below 32; `f` reads or skips the value.
/// `seen` gets one bit per field id below 32.
template <class F>
errc for_each_field(const uint8_t* payload, size_t n, uint32_t& seen, F f) {
  reader r{payload, n};
  while (!r.at_end()) {
    uint16_t fid;
    wire_type wt;
    if (auto e = r.tag(fid, wt); e != errc::none)
      return e;
    if (!first_time(seen, fid))
      return errc::duplicate_field;
    if (auto e = f(r, fid, wt); e != errc::none)
      return e;
  }
  return errc::none;
}

template <class F>
void frame(std::vector<uint8_t>& out, control_type type, uint64_t seq, F body) {
  auto start = out.size();
  out.resize(start + frame_header::size);
  writer w{out};
  body(w);
  frame_header h;
  h.payload_length = static_cast<uint32_t>(out.size() - start - frame_header::size);
  h.type_id = static_cast<uint32_t>(type);
  h.sequence = seq;
  h.flags = frame_header::flag_control;
  h.write(out.data() + start);
}

} // namespace

void encode_frame(std::vector<uint8_t>& out, const hello& x, uint64_t seq) {
  frame(out, control_type::hello, seq, [&](writer& w) {
    w.scalar<uint32_t>(1, x.magic);
    w.scalar<uint16_t>(2, x.version);
    w.sized(3, x.schema_digest.data(), x.schema_digest.size());
    w.string(4, clip(x.node, max_name));
    w.string(5, clip(x.service, max_name));
    w.scalar<uint32_t>(6, x.pid);
    w.bytes(7, x.auth_proof);
    std::vector<uint8_t> list;
    list.resize(4);
    store_u32(list.data(), static_cast<uint32_t>(x.types.size()));
    for (auto& t : x.types) {
      auto off = list.size();
      auto name = clip(t.name, max_name);
      auto name_len = name.size();
      list.resize(off + 4 + 32 + 1 + name_len);
      store_u32(list.data() + off, t.type_id);
      std::copy(t.digest.begin(), t.digest.end(), list.begin() + off + 4);
      list[off + 36] = static_cast<uint8_t>(name_len);
      std::copy(name.begin(), name.end(), list.begin() + off + 37);
    }
    w.sized(8, list.data(), list.size());
    if (x.nonce != digest128{})
      w.sized(9, x.nonce.data(), x.nonce.size());
    // Only with a secret: a hello without one is byte for byte the same as
    // before challenge-response authentication existed.
    if (x.auth_scheme_id != static_cast<uint8_t>(auth_scheme::none))
      w.scalar<uint8_t>(10, x.auth_scheme_id);
  });
}

void encode_frame(std::vector<uint8_t>& out, const auth& x, uint64_t seq) {
  frame(out, control_type::auth, seq,
        [&](writer& w) { w.sized(1, x.proof.data(), x.proof.size()); });
}

errc decode(const uint8_t* payload, size_t n, auth& out) {
  uint32_t seen = 0;
  auto e = for_each_field(payload, n, seen, [&](reader& r, uint16_t fid, wire_type wt) {
    return fid == 1 ? r.array(wt, out.proof) : r.skip(wt);
  });
  if (e != errc::none)
    return e;
  if ((seen & 2u) == 0)
    return errc::truncated;
  return errc::none;
}

void encode_interest(std::vector<uint8_t>& out, control_type type,
                     uint32_t type_id, uint64_t seq) {
  frame(out, type, seq, [&](writer& w) { w.scalar<uint32_t>(1, type_id); });
}

void encode_heartbeat(std::vector<uint8_t>& out, uint64_t seq) {
  frame(out, control_type::heartbeat, seq, [](writer&) {});
}

void encode_goodbye(std::vector<uint8_t>& out, uint64_t seq) {
  frame(out, control_type::goodbye, seq, [](writer&) {});
}

void encode_frame(std::vector<uint8_t>& out, const shm_attach& x, uint64_t seq) {
  frame(out, control_type::shm_attach, seq, [&](writer& w) {
    w.string(1, clip(x.segment, max_name));
    w.string(2, clip(x.doorbell, max_name));
  });
}

errc decode(const uint8_t* payload, size_t n, shm_attach& out) {
  uint32_t seen = 0;
  auto e = for_each_field(payload, n, seen, [&](reader& r, uint16_t fid, wire_type wt) {
    switch (fid) {
      case 1: return r.string(wt, max_name, out.segment);
      case 2: return r.string(wt, max_name, out.doorbell);
      default: return r.skip(wt);
    }
  });
  if (e != errc::none)
    return e;
  if ((seen & 6u) != 6u || out.segment.empty() || out.doorbell.empty())
    return errc::truncated;
  return errc::none;
}

errc decode_interest(const uint8_t* payload, size_t n, uint32_t& type_id) {
  uint32_t seen = 0;
  auto e = for_each_field(payload, n, seen, [&](reader& r, uint16_t fid, wire_type wt) {
    return fid == 1 ? r.scalar(wt, type_id) : r.skip(wt);
  });
  if (e != errc::none)
    return e;
  if ((seen & 2u) == 0)
    return errc::truncated;
  if (type_id == 0 || type_id >= first_control_type_id)
    return errc::unknown_type;
  return errc::none;
}

void encode_frame(std::vector<uint8_t>& out, const refuse& x, uint64_t seq) {
  // A decoded refusal whose number does not fit in `reason` is written with
  // its received number, so that decode and encode are lossless.
  auto number = x.reason == errc_unrepresentable && x.code > 0xFF
                  ? x.code
                  : static_cast<uint32_t>(x.reason);
  frame(out, control_type::refuse, seq, [&](writer& w) {
    w.scalar<uint32_t>(1, number);
    w.string(2, clip(x.text, max_text));
  });
}

errc decode(const uint8_t* payload, size_t n, hello& out) {
  uint32_t seen = 0;
  auto res = for_each_field(payload, n, seen,
                            [&](reader& r, uint16_t fid, wire_type wt) -> errc {
    errc e = errc::none;
    switch (fid) {
      case 1: e = r.scalar(wt, out.magic); break;
      case 2: e = r.scalar(wt, out.version); break;
      case 3: e = r.array(wt, out.schema_digest); break;
      case 4: e = r.string(wt, max_name, out.node); break;
      case 5: e = r.string(wt, max_name, out.service); break;
      case 6: e = r.scalar(wt, out.pid); break;
      case 7: e = r.bytes(wt, max_proof, out.auth_proof); break;
      case 9: e = r.array(wt, out.nonce); break;
      case 10: e = r.scalar(wt, out.auth_scheme_id); break;
      case 8: {
        const uint8_t* p = nullptr;
        uint32_t len = 0;
        if (e = r.sized(wt, p, len); e != errc::none)
          return e;
        if (len < 4)
          return errc::truncated;
        auto count = load_u32(p);
        if (count > max_types)
          return errc::vector_too_long;
        size_t off = 4;
        out.types.clear();
        for (uint32_t i = 0; i < count; ++i) {
          if (len - off < 37)
            return errc::truncated;
          type_digest t;
          t.type_id = load_u32(p + off);
          std::copy(p + off + 4, p + off + 36, t.digest.begin());
          size_t name_len = p[off + 36];
          off += 37;
          if (len - off < name_len)
            return errc::truncated;
          if (!valid_utf8(p + off, name_len))
            return errc::invalid_utf8;
          t.name.assign(reinterpret_cast<const char*>(p + off), name_len);
          off += name_len;
          out.types.push_back(std::move(t));
        }
        if (off != len)
          return errc::bad_vector_length;
        break;
      }
      default: e = r.skip(wt);
    }
    return e;
  });
  if (res != errc::none)
    return res;
  if (out.magic != hello_magic)
    return errc::bad_magic;
  // Every field but the retired auth proof, the nonce and the auth scheme
  // is required (the link refuses a missing nonce when a secret is set).
  constexpr uint32_t required = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4)
                                | (1u << 5) | (1u << 6) | (1u << 8);
  if ((seen & required) != required)
    return (seen & (1u << 1)) ? errc::truncated : errc::bad_magic;
  return errc::none;
}

errc decode(const uint8_t* payload, size_t n, refuse& out) {
  uint32_t seen = 0;
  return for_each_field(payload, n, seen,
                            [&](reader& r, uint16_t fid, wire_type wt) -> errc {
    errc e = errc::none;
    switch (fid) {
      case 1: {
        // Any number decodes: a newer peer may refuse with a code this
        // build does not know, and its text must still reach the log.
        uint32_t v = 0;
        e = r.scalar(wt, v);
        out.code = v;
        out.reason = v <= 0xFF ? static_cast<errc>(v) : errc_unrepresentable;
        break;
      }
      case 2: e = r.string(wt, max_text, out.text); break;
      default: e = r.skip(wt);
    }
    return e;
  });
}

std::string reason_name(const refuse& x) {
  // `code` is 0 in a refusal built locally; then `reason` is the number.
  auto number = x.code != 0 ? x.code : static_cast<uint32_t>(x.reason);
  if (number <= static_cast<uint32_t>(errc_last))
    return to_string(static_cast<errc>(number));
  return "unknown code " + std::to_string(number);
}

std::string to_hex(const digest256& d) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (auto b : d) {
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

refuse check_hello(const hello& local, const hello& remote) {
  auto who = [](const hello& h) {
    return "node '" + h.node + "' service '" + h.service + "' (pid "
           + std::to_string(h.pid) + ")";
  };
  if (remote.magic != hello_magic)
    return {errc::bad_magic, "peer " + who(remote) + " is not a Mycelium peer (bad magic)"};
  if (remote.version != local.version)
    return {errc::version_mismatch,
            "protocol version mismatch: local " + std::to_string(local.version)
              + " vs remote " + std::to_string(remote.version) + " from "
              + who(remote)};
  if (remote.schema_digest == local.schema_digest)
    return {};
  std::string first = "none found in the announced type lists";
  std::map<uint32_t, const type_digest*> theirs;
  for (auto& t : remote.types)
    theirs.emplace(t.type_id, &t);
  std::map<uint32_t, const type_digest*> ours;
  for (auto& t : local.types)
    ours.emplace(t.type_id, &t);
  // Walk the union of ids in ascending order and report the first difference.
  auto i = ours.begin();
  auto j = theirs.begin();
  while (i != ours.end() || j != theirs.end()) {
    if (j == theirs.end() || (i != ours.end() && i->first < j->first)) {
      first = i->second->name + " (id " + std::to_string(i->first)
              + ") exists only locally";
      break;
    }
    if (i == ours.end() || j->first < i->first) {
      first = j->second->name + " (id " + std::to_string(j->first)
              + ") exists only on the remote side";
      break;
    }
    if (i->second->digest != j->second->digest || i->second->name != j->second->name) {
      first = i->second->name + " (id " + std::to_string(i->first) + ")";
      if (i->second->name != j->second->name)
        first += ", called '" + j->second->name + "' remotely";
      break;
    }
    ++i;
    ++j;
  }
  return {errc::schema_mismatch,
          "schema digest mismatch: local " + who(local) + " has "
            + to_hex(local.schema_digest) + ", remote " + who(remote) + " has "
            + to_hex(remote.schema_digest)
            + "; first differing message type: " + first
            + ". Rebuild both sides from the same schema file."};
}

} // namespace mycelium::wire
