#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "mycelium/errc.hpp"
#include "mycelium/wire/byte_order.hpp"

/// The TLV payload encoding (see docs/wire-protocol.md). A message payload is
/// a sequence of fields; each field is a 2-byte tag followed by its value:
///
/// ```
///  tag (u16, little-endian)       value
/// +-------------------------+---+ +-------------------------------------+
/// | field_id (13 bits)      |wt | | wt 0: 1 byte    wt 1: 2 bytes       |
/// | bits 15..3              |2-0| | wt 2: 4 bytes   wt 3: 8 bytes       |
/// +-------------------------+---+ | wt 4: u32 length L, then L bytes    |
///                                 +-------------------------------------+
/// ```
///
/// The length is explicit for wire type 4 (sized) and implied by the wire type
/// otherwise, so a reader can skip any field it does not know. Generated
/// encoders write fields in ascending id order; decoders accept any order,
/// reject duplicates, skip unknown ids and leave missing fields at their
/// schema default.
///
/// `writer` and `reader` are not thread-safe; use one per thread.
namespace mycelium::wire {

enum class wire_type : uint8_t {
  fixed8 = 0,
  fixed16 = 1,
  fixed32 = 2,
  fixed64 = 3,
  sized = 4,
};

constexpr uint16_t max_field_id = 8191;
constexpr size_t tag_size = 2;
constexpr size_t sized_prefix = 4;

constexpr uint16_t make_tag(uint16_t field_id, wire_type wt) noexcept {
  return static_cast<uint16_t>((field_id << 3) | static_cast<uint8_t>(wt));
}

/// The wire type of a scalar C++ type (bool, integers, floats, enums).
template <class T>
constexpr wire_type scalar_wire_type() noexcept {
  if constexpr (std::is_enum_v<T>)
    return wire_type::fixed32;
  else if constexpr (sizeof(T) == 1)
    return wire_type::fixed8;
  else if constexpr (sizeof(T) == 2)
    return wire_type::fixed16;
  else if constexpr (sizeof(T) == 4)
    return wire_type::fixed32;
  else
    return wire_type::fixed64;
}

/// Bit pattern of an arithmetic value as an unsigned integer of equal size.
template <class T>
auto to_bits(T x) noexcept {
  if constexpr (std::is_same_v<T, bool>) {
    return static_cast<uint8_t>(x ? 1 : 0);
  } else if constexpr (std::is_enum_v<T>) {
    return static_cast<uint32_t>(x);
  } else {
    using U = std::conditional_t<sizeof(T) == 1, uint8_t,
              std::conditional_t<sizeof(T) == 2, uint16_t,
              std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
    U u;
    std::memcpy(&u, &x, sizeof(T));
    return u;
  }
}

/// Returns whether `[p, p+n)` is well-formed UTF-8 (no overlongs, no
/// surrogates, nothing above U+10FFFF).
bool valid_utf8(const uint8_t* p, size_t n) noexcept;

/// Appends TLV fields to a byte buffer: a vector that grows, or a fixed span
/// of memory (a claimed ring slot, so that a frame is encoded in place). A
/// span that turns out too small is never written past: the writer then
/// reports `overflowed()` and its output is garbage to be discarded.
///
/// Thread-safety: none; one writer per encoding.
class writer {
public:
  explicit writer(std::vector<uint8_t>& buf) noexcept : vec_(&buf) {}

  /// Writes into `[data, data + capacity)`.
  writer(uint8_t* data, size_t capacity) noexcept
    : span_(data), used_(0), capacity_(capacity) {
  }

  /// Bytes written so far (span mode), or the vector's size.
  size_t size() const noexcept { return vec_ ? vec_->size() : used_; }

  /// Span mode: the encoding did not fit (nothing was written past the span).
  bool overflowed() const noexcept { return overflowed_; }

  template <class T>
  void scalar(uint16_t field, T x) {
    auto bits = to_bits(x);
    auto* p = grow(tag_size + sizeof(bits));
    store_u16(p, make_tag(field, scalar_wire_type<T>()));
    store_le(p + tag_size, bits);
  }

  void sized(uint16_t field, const void* data, size_t n) {
    auto* p = grow(tag_size + sized_prefix + n);
    store_u16(p, make_tag(field, wire_type::sized));
    store_u32(p + tag_size, static_cast<uint32_t>(n));
    if (n > 0)
      std::memcpy(p + tag_size + sized_prefix, data, n);
  }

  void string(uint16_t field, const std::string& x) {
    sized(field, x.data(), x.size());
  }

  void bytes(uint16_t field, const std::vector<uint8_t>& x) {
    sized(field, x.data(), x.size());
  }

  /// Appends fields that are already encoded (a payload another encoder
  /// made, e.g. a Python message class), unchanged.
  void raw(const void* data, size_t n) {
    if (n > 0)
      std::memcpy(grow(n), data, n);
  }

  /// Packed little-endian scalars (fixed arrays and vectors).
  template <class Container>
  void packed(uint16_t field, const Container& xs) {
    using T = typename Container::value_type;
    constexpr size_t esize = std::is_same_v<T, bool> ? 1 : sizeof(T);
    auto* p = grow(tag_size + sized_prefix + esize * xs.size());
    store_u16(p, make_tag(field, wire_type::sized));
    store_u32(p + tag_size, static_cast<uint32_t>(esize * xs.size()));
    p += tag_size + sized_prefix;
    for (auto x : xs) {
      store_le(p, to_bits(static_cast<T>(x)));
      p += esize;
    }
  }

  /// Starts a sized field whose content is written next (nested message);
  /// returns a mark for `end_sized`.
  size_t begin_sized(uint16_t field) {
    auto* p = grow(tag_size + sized_prefix);
    store_u16(p, make_tag(field, wire_type::sized));
    return size();
  }

  void end_sized(size_t mark) noexcept {
    if (overflowed_)
      return;
    store_u32(data() + mark - sized_prefix, static_cast<uint32_t>(size() - mark));
  }

private:
  uint8_t* data() noexcept { return vec_ ? vec_->data() : span_; }

  uint8_t* grow(size_t n) {
    if (vec_ != nullptr) {
      auto old = vec_->size();
      vec_->resize(old + n);
      return vec_->data() + old;
    }
    if (!overflowed_ && capacity_ - used_ >= n) {
      auto* p = span_ + used_;
      used_ += n;
      return p;
    }
    // Out of room: keep counting, write the rest into a scratch area.
    overflowed_ = true;
    used_ += n;
    scratch_.resize(n);
    return scratch_.data();
  }

  static void store_le(uint8_t* p, uint8_t v) noexcept { *p = v; }
  static void store_le(uint8_t* p, uint16_t v) noexcept { store_u16(p, v); }
  static void store_le(uint8_t* p, uint32_t v) noexcept { store_u32(p, v); }
  static void store_le(uint8_t* p, uint64_t v) noexcept { store_u64(p, v); }

  std::vector<uint8_t>* vec_ = nullptr;
  uint8_t* span_ = nullptr;
  size_t used_ = 0;
  size_t capacity_ = 0;
  bool overflowed_ = false;
  std::vector<uint8_t> scratch_; ///< span mode, after an overflow only
};

/// Reads TLV fields from a byte range; every read is bounds-checked and
/// reports a specific `errc`. Never reads outside the range it was given.
class reader {
public:
  reader(const uint8_t* data, size_t size) noexcept
    : pos_(data), end_(data + size) {}

  bool at_end() const noexcept { return pos_ == end_; }
  size_t remaining() const noexcept { return static_cast<size_t>(end_ - pos_); }

  errc tag(uint16_t& field, wire_type& wt) noexcept {
    if (remaining() < tag_size)
      return errc::truncated;
    auto t = load_u16(pos_);
    pos_ += tag_size;
    auto w = static_cast<uint8_t>(t & 7);
    field = static_cast<uint16_t>(t >> 3);
    if (w > static_cast<uint8_t>(wire_type::sized))
      return errc::bad_wire_type;
    if (field == 0)
      return errc::bad_field_id;
    wt = static_cast<wire_type>(w);
    return errc::none;
  }

  /// Reads a scalar value whose tag announced `wt`.
  template <class T>
  errc scalar(wire_type wt, T& out) noexcept {
    if (wt != scalar_wire_type<T>())
      return errc::bad_wire_type;
    using B = decltype(to_bits(T{}));
    if (remaining() < sizeof(B))
      return errc::truncated;
    auto bits = load_le<B>(pos_);
    pos_ += sizeof(B);
    return from_bits(bits, out);
  }

  /// Reads the length prefix and returns the sized value's bytes.
  errc sized(wire_type wt, const uint8_t*& data, uint32_t& n) noexcept {
    if (wt != wire_type::sized)
      return errc::bad_wire_type;
    if (remaining() < sized_prefix)
      return errc::truncated;
    n = load_u32(pos_);
    pos_ += sized_prefix;
    if (remaining() < n)
      return errc::truncated;
    data = pos_;
    pos_ += n;
    return errc::none;
  }

  errc string(wire_type wt, size_t max, std::string& out) {
    const uint8_t* p = nullptr;
    uint32_t n = 0;
    if (auto e = sized(wt, p, n); e != errc::none)
      return e;
    if (n > max)
      return errc::string_too_long;
    if (!valid_utf8(p, n))
      return errc::invalid_utf8;
    out.assign(reinterpret_cast<const char*>(p), n);
    return errc::none;
  }

  errc bytes(wire_type wt, size_t max, std::vector<uint8_t>& out) {
    const uint8_t* p = nullptr;
    uint32_t n = 0;
    if (auto e = sized(wt, p, n); e != errc::none)
      return e;
    if (n > max)
      return errc::bytes_too_long;
    out.assign(p, p + n);
    return errc::none;
  }

  template <class T, size_t N>
  errc array(wire_type wt, std::array<T, N>& out) noexcept {
    const uint8_t* p = nullptr;
    uint32_t n = 0;
    if (auto e = sized(wt, p, n); e != errc::none)
      return e;
    using B = decltype(to_bits(T{}));
    if (n != N * sizeof(B))
      return errc::array_length_mismatch;
    for (size_t i = 0; i < N; ++i)
      if (auto e = from_bits(load_le<B>(p + i * sizeof(B)), out[i]);
          e != errc::none)
        return e;
    return errc::none;
  }

  template <class T>
  errc vector(wire_type wt, size_t max, std::vector<T>& out) {
    const uint8_t* p = nullptr;
    uint32_t n = 0;
    if (auto e = sized(wt, p, n); e != errc::none)
      return e;
    using B = decltype(to_bits(T{}));
    if (n % sizeof(B) != 0)
      return errc::bad_vector_length;
    auto count = n / sizeof(B);
    if (count > max)
      return errc::vector_too_long;
    out.clear();
    out.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      T x{};
      if (auto e = from_bits(load_le<B>(p + i * sizeof(B)), x);
          e != errc::none)
        return e;
      out.push_back(x);
    }
    return errc::none;
  }

  /// Skips a field of an unknown id.
  errc skip(wire_type wt) noexcept {
    size_t n = 0;
    switch (wt) {
      case wire_type::fixed8: n = 1; break;
      case wire_type::fixed16: n = 2; break;
      case wire_type::fixed32: n = 4; break;
      case wire_type::fixed64: n = 8; break;
      case wire_type::sized: {
        const uint8_t* p = nullptr;
        uint32_t len = 0;
        return sized(wt, p, len);
      }
    }
    if (remaining() < n)
      return errc::truncated;
    pos_ += n;
    return errc::none;
  }

private:
  template <class B>
  static B load_le(const uint8_t* p) noexcept {
    if constexpr (sizeof(B) == 1)
      return *p;
    else if constexpr (sizeof(B) == 2)
      return load_u16(p);
    else if constexpr (sizeof(B) == 4)
      return load_u32(p);
    else
      return load_u64(p);
  }

  template <class B, class T>
  static errc from_bits(B bits, T& out) noexcept {
    if constexpr (std::is_same_v<T, bool>) {
      if (bits > 1)
        return errc::bad_bool;
      out = bits == 1;
    } else if constexpr (std::is_enum_v<T>) {
      out = static_cast<T>(bits); // validated by the generated decoder
    } else {
      std::memcpy(&out, &bits, sizeof(T));
    }
    return errc::none;
  }

  const uint8_t* pos_;
  const uint8_t* end_;
};

} // namespace mycelium::wire
