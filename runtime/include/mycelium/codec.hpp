#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/message.hpp>

#include "mycelium/errc.hpp"
#include "mycelium/wire/frame_header.hpp"
#include "mycelium/wire/handshake.hpp"
#include "mycelium/wire/tlv.hpp"

namespace mycelium {

/// Called by `schema_descriptor::visit` with a decoded value of `type_id`
/// (a generated struct that lives only during the call; it may be moved
/// from).
using value_visitor = void (*)(void* ctx, uint32_t type_id, void* value);

/// A runtime, type-erased view of one generated schema: what links need to
/// encode any message of it, decode any frame of it, and build a hello.
/// Generated code returns one from `<package>::descriptor()`. Immutable after
/// construction; thread-safe to share.
struct schema_descriptor {
  std::string package;
  wire::digest256 digest{};
  std::vector<wire::type_digest> types;

  /// Decodes payload bytes of type `type_id` into a message holding one value
  /// of the generated struct. Returns `errc::unknown_type` for foreign ids.
  errc (*decode)(uint32_t type_id, const uint8_t* payload, size_t n,
                 caf::message& out) = nullptr;

  /// Appends the payload of `msg` (one generated struct) to `out` and sets
  /// `type_id`; returns false when `msg` holds no type of this schema.
  bool (*encode)(const caf::message& msg, std::vector<uint8_t>& out,
                 uint32_t& type_id) = nullptr;

  /// Registers every message type with CAF (needed for BASP and printing).
  void (*add_message_types)(caf::actor_system_config& cfg) = nullptr;

  /// Decodes payload bytes of type `type_id` into the calling thread's
  /// reused value of that type (detail::decode_slot) and calls
  /// `fn(ctx, type_id, &value)` with it: no message, and no allocation once
  /// the value's buffers are as large as the frames. Returns the decode
  /// error (then `fn` is not called).
  errc (*visit)(uint32_t type_id, const uint8_t* payload, size_t n, void* ctx,
                value_visitor fn) = nullptr;

  /// Writes the payload of `*value` (a generated struct of `type_id`) with
  /// `w` (into a vector, or in place into a span such as a ring slot);
  /// false for a foreign id. O(1): no search by type.
  bool (*encode_value)(uint32_t type_id, const void* value,
                       wire::writer& w) = nullptr;

  /// Moves `*value` (a generated struct of `type_id`) into a new message.
  caf::message (*box)(uint32_t type_id, void* value) = nullptr;

  /// The position of `type_id` in `types`, or -1 (a generated switch).
  int (*index_of)(uint32_t type_id) noexcept = nullptr;

  /// The announced entry of `type_id`, or nullptr. O(1).
  const wire::type_digest* find(uint32_t type_id) const noexcept {
    if (index_of != nullptr) {
      auto i = index_of(type_id);
      return i < 0 ? nullptr : &types[static_cast<size_t>(i)];
    }
    for (auto& t : types)
      if (t.type_id == type_id)
        return &t;
    return nullptr;
  }
};

/// Appends the TLV payload of a generated message `x` to `out`.
template <class T>
void encode_payload(const T& x, std::vector<uint8_t>& out) {
  wire::writer w{out};
  encode_fields(w, x);
}

/// Decodes a TLV payload into `out` (reset to its defaults first). The
/// reset copy-assigns a default value, so the `bytes`, `string` and vector
/// members of a reused `out` keep their buffers (detail::decode_slot).
template <class T>
errc decode_payload(const uint8_t* p, size_t n, T& out) {
  static const T defaults{};
  out = defaults;
  wire::reader r{p, n};
  return decode_fields(r, out);
}

/// Appends one complete frame (header + payload) holding `x`.
template <class T>
void encode_frame(const T& x, uint64_t sequence, std::vector<uint8_t>& out) {
  auto start = out.size();
  out.resize(start + wire::frame_header::size);
  encode_payload(x, out);
  wire::frame_header h;
  h.payload_length = static_cast<uint32_t>(out.size() - start - wire::frame_header::size);
  h.type_id = T::type_id;
  h.sequence = sequence;
  h.write(out.data() + start);
}

/// Decodes one complete data frame with the schema `d`: validates the header
/// (size limit, reserved bits), the type id and the whole payload.
errc decode_frame(const schema_descriptor& d, const uint8_t* data, size_t n,
                  uint32_t max_payload, wire::frame_header& header,
                  caf::message& out);

/// Builds the hello that announces schema `d` for a node and service.
wire::hello make_hello(const schema_descriptor& d, std::string node,
                       std::string service, uint32_t pid);

} // namespace mycelium
