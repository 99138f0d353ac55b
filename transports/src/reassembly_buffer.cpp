// The bytes of an incomplete frame between two reads, copied away from 4K
// aliasing with their source (see reassembly_buffer.hpp).

#include "mycelium/transports/reassembly_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace mycelium::transports {

namespace {

constexpr size_t page = 4096;

/// The offset into `base` (below a page) whose address is half a page
/// away from `src`, modulo a page.
size_t offset_away_from(const uint8_t* base, const uint8_t* src) noexcept {
  auto b = reinterpret_cast<uintptr_t>(base);
  auto s = reinterpret_cast<uintptr_t>(src);
  return (s + page / 2 - b) % page;
}

size_t grown(size_t capacity, size_t need) noexcept {
  size_t cap = std::max<size_t>(capacity, 2 * page);
  while (cap < need + page)
    cap *= 2;
  return cap;
}

} // namespace

void reassembly_buffer::reserve_fresh(size_t need) {
  auto cap = grown(capacity_, need);
  std::unique_ptr<uint8_t[]> fresh{new uint8_t[cap]};
  auto off = offset_away_from(fresh.get(), data());
  if (size_ > 0)
    std::memcpy(fresh.get() + off, data(), size_);
  storage_ = std::move(fresh);
  capacity_ = cap;
  begin_ = off;
}

void reassembly_buffer::assign(const uint8_t* p, size_t n) {
  size_ = 0;
  if (n + page > capacity_) {
    reserve_fresh(n); // nothing to move: size_ is 0
  }
  begin_ = offset_away_from(storage_.get(), p);
  if (n > 0)
    std::memcpy(storage_.get() + begin_, p, n);
  size_ = n;
}

void reassembly_buffer::append(const uint8_t* p, size_t n) {
  if (size_ == 0) {
    assign(p, n);
    return;
  }
  if (begin_ + size_ + n > capacity_)
    reserve_fresh(size_ + n);
  std::memcpy(storage_.get() + begin_ + size_, p, n);
  size_ += n;
}

void reassembly_buffer::consume(size_t n) noexcept {
  n = std::min(n, size_);
  begin_ += n;
  size_ -= n;
  if (size_ == 0)
    begin_ = 0;
}

} // namespace mycelium::transports
