#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace mycelium::transports {

/// The bytes of an incomplete frame that a link keeps between two reads of
/// its socket, until the rest of the frame arrives.
///
/// Like a `std::vector<uint8_t>` used as a queue, with one difference that
/// matters for speed: `assign` places the copy so that its address is half
/// a page away from the source's, modulo the 4 KiB page. A copy whose
/// destination lies a few bytes past a 4 KiB multiple of its source makes
/// the CPU's loads wait for its stores to addresses that alias ("4K
/// aliasing"): measured here, a 64 KiB frame spread over two reads took
/// about 40 us more per round trip when the allocator happened to place
/// the buffer 16 bytes past the read buffer plus 64 KiB.
///
/// Thread-safety: none; owned by one link's protocol state.
class reassembly_buffer {
public:
  /// Whether no bytes wait.
  bool empty() const noexcept { return size_ == 0; }

  /// How many bytes wait.
  size_t size() const noexcept { return size_; }

  /// The waiting bytes (valid until the next non-const call).
  const uint8_t* data() const noexcept { return storage_.get() + begin_; }

  /// Forgets the waiting bytes (keeps the storage).
  void clear() noexcept {
    begin_ = 0;
    size_ = 0;
  }

  /// Replaces the waiting bytes with the `n` bytes at `p`, which must not
  /// point into this buffer.
  void assign(const uint8_t* p, size_t n);

  /// Appends the `n` bytes at `p`, which must not point into this buffer.
  void append(const uint8_t* p, size_t n);

  /// Drops the first `n` waiting bytes (`n <= size()`), without moving the
  /// rest.
  void consume(size_t n) noexcept;

  /// Bytes of storage held (tests and diagnostics).
  size_t capacity() const noexcept { return capacity_; }

private:
  /// Makes room for `need` bytes from an offset of at most a page, moving
  /// the waiting bytes into fresh storage.
  void reserve_fresh(size_t need);

  std::unique_ptr<uint8_t[]> storage_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t size_ = 0;
};

} // namespace mycelium::transports
