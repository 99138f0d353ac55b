#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>

#include "mycelium/transports/shm/ring_layout.hpp"

namespace mycelium::transports::shm {

/// Hot-path result of ring operations.
enum class ring_status : uint8_t {
  ok,
  back_pressured, ///< not enough free space now; retry later
  too_large,      ///< the frame can never fit (over `max_frame()`)
  empty,          ///< nothing to read
  corrupt,        ///< a record header is impossible: reset the link
};

/// Ring capacities are powers of two from 64 bytes to 1 GiB.
constexpr bool valid_capacity(uint64_t capacity) noexcept {
  return capacity >= 64 && capacity <= (uint64_t{1} << 30)
         && (capacity & (capacity - 1)) == 0;
}

/// The largest frame a ring of `capacity` bytes accepts: a record must fit
/// in half the ring, so that a wrap record plus the frame always fit into an
/// empty ring.
constexpr uint64_t max_frame_for(uint64_t capacity) noexcept {
  return capacity / 2 - sizeof(record_header);
}

/// The producer side of a ring (a flyweight over `ring_control` and the data
/// area; it owns neither). One thread at a time.
class ring_writer {
public:
  ring_writer() = default;
  /// `capacity` must be a power of two (see `valid_capacity`).
  ring_writer(ring_control* ctl, uint8_t* data, uint64_t capacity) noexcept
    : ctl_(ctl), data_(data), capacity_(capacity),
      head_(ctl->head.load(std::memory_order_relaxed)),
      tail_cache_(ctl->tail.load(std::memory_order_acquire)) {
  }

  uint64_t max_frame() const noexcept { return max_frame_for(capacity_); }

  /// Copies one frame into the ring and publishes it.
  ring_status write(const void* frame, size_t n) noexcept {
    uint8_t* dst = nullptr;
    auto st = reserve(n, dst);
    if (st != ring_status::ok)
      return st;
    if (n > 0)
      std::memcpy(dst, frame, n);
    commit();
    return ring_status::ok;
  }

  /// Reserves space for a frame of `n` bytes; on `ok`, `out` points to where
  /// the frame bytes go. Nothing is visible to the reader until `commit`.
  ring_status reserve(size_t n, uint8_t*& out) noexcept {
    if (n > max_frame())
      return ring_status::too_large;
    auto need = sizeof(record_header) + align8(n);
    auto offset = head_ & (capacity_ - 1);
    auto to_end = capacity_ - offset;
    auto total = need <= to_end ? need : to_end + need; // wrap record + frame
    if (tail_cache_ + capacity_ - head_ < total) {
      tail_cache_ = ctl_->tail.load(std::memory_order_acquire);
      if (tail_cache_ > head_ || head_ - tail_cache_ > capacity_)
        return ring_status::corrupt; // the reader's position is impossible
      if (tail_cache_ + capacity_ - head_ < total)
        return ring_status::back_pressured;
    }
    if (need > to_end) {
      auto* wrap = reinterpret_cast<record_header*>(data_ + offset);
      wrap->length = static_cast<uint32_t>(to_end - sizeof(record_header));
      wrap->kind = record_wrap;
      pending_ = to_end;
      offset = 0;
    } else {
      pending_ = 0;
    }
    auto* rec = reinterpret_cast<record_header*>(data_ + offset);
    rec->length = static_cast<uint32_t>(n);
    rec->kind = record_frame;
    pending_ += need;
    out = data_ + offset + sizeof(record_header);
    return ring_status::ok;
  }

  /// Claims the longest contiguous run for one frame of between `min_n` and
  /// `max_n` bytes whose exact size is not known yet (it is encoded in
  /// place, as Aeron's claim/commit does): on `ok`, `out` points to where
  /// the frame goes and `granted` (>= `min_n`) says how much may be written.
  /// Then `commit(n)` with the actual size publishes it; a claim that is not
  /// committed leaves nothing visible. `back_pressured`: not even `min_n`
  /// bytes are free.
  ring_status claim(size_t min_n, size_t max_n, uint8_t*& out, size_t& granted) noexcept {
    if (max_n > max_frame())
      max_n = max_frame();
    if (min_n > max_n)
      return ring_status::too_large;
    constexpr uint64_t hdr = sizeof(record_header);
    auto need_min = hdr + align8(min_n);
    for (int pass = 0; pass < 2; ++pass) {
      auto free = tail_cache_ + capacity_ - head_;
      auto offset = head_ & (capacity_ - 1);
      auto to_end = capacity_ - offset;
      auto room = std::min(free, to_end);
      uint64_t start = offset;
      uint64_t skip = 0; // bytes of a wrap record before the frame
      if (room < need_min && to_end < need_min && free >= to_end + need_min) {
        room = free - to_end; // the run at the start of the ring
        start = 0;
        skip = to_end;
      }
      if (room >= need_min) {
        if (skip > 0) {
          auto* wrap = reinterpret_cast<record_header*>(data_ + offset);
          wrap->length = static_cast<uint32_t>(to_end - hdr);
          wrap->kind = record_wrap;
        }
        granted = static_cast<size_t>(std::min<uint64_t>((room - hdr) & ~uint64_t{7}, max_n));
        claim_start_ = start;
        pending_ = skip;
        out = data_ + start + hdr;
        return ring_status::ok;
      }
      if (pass == 0) {
        tail_cache_ = ctl_->tail.load(std::memory_order_acquire);
        if (tail_cache_ > head_ || head_ - tail_cache_ > capacity_)
          return ring_status::corrupt; // the reader's position is impossible
      }
    }
    return ring_status::back_pressured;
  }

  /// Publishes the claimed frame with its actual size `n` (<= granted).
  void commit(size_t n) noexcept {
    auto* rec = reinterpret_cast<record_header*>(data_ + claim_start_);
    rec->length = static_cast<uint32_t>(n);
    rec->kind = record_frame;
    pending_ += sizeof(record_header) + align8(n);
    commit();
  }

  /// Makes the reserved frame visible (release: its bytes come first).
  void commit() noexcept {
    head_ += pending_;
    pending_ = 0;
    ctl_->head.store(head_, std::memory_order_release);
  }

  /// Frames written but not yet consumed (walks the records from the
  /// reader's position; a snapshot while the reader runs). Stops at the
  /// first impossible record.
  uint64_t unconsumed_frames() const noexcept {
    uint64_t pos = ctl_->tail.load(std::memory_order_acquire);
    if (pos > head_ || head_ - pos > capacity_)
      return 0;
    uint64_t frames = 0;
    while (pos < head_) {
      auto offset = pos & (capacity_ - 1);
      const auto* rec = reinterpret_cast<const record_header*>(data_ + offset);
      auto size = rec->kind == record_wrap ? capacity_ - offset
                                           : sizeof(record_header) + align8(rec->length);
      if ((rec->kind != record_wrap && rec->kind != record_frame) || size > head_ - pos
          || offset % 8 != 0)
        break;
      frames += rec->kind == record_frame ? 1 : 0;
      pos += size;
    }
    return frames;
  }

  /// Bytes in the ring not yet consumed (an estimate for statistics).
  uint64_t fill() const noexcept {
    return head_ - ctl_->tail.load(std::memory_order_relaxed);
  }

private:
  ring_control* ctl_ = nullptr;
  uint8_t* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t head_ = 0;       ///< our position (the shared one lags until commit)
  uint64_t tail_cache_ = 0; ///< last seen consumer position
  uint64_t pending_ = 0;    ///< bytes reserved, not committed
  uint64_t claim_start_ = 0; ///< offset of the claimed frame's record
};

/// The consumer side of a ring. One thread at a time.
class ring_reader {
public:
  ring_reader() = default;
  /// `capacity` must be a power of two (see `valid_capacity`).
  ring_reader(ring_control* ctl, const uint8_t* data, uint64_t capacity) noexcept
    : ctl_(ctl), data_(data), capacity_(capacity),
      tail_(ctl->tail.load(std::memory_order_relaxed)), head_cache_(tail_) {
  }

  /// Points `frame`/`n` at the next frame without consuming it. The bytes
  /// stay valid until `release`.
  ring_status peek(const uint8_t*& frame, size_t& n) noexcept {
    for (;;) {
      if (head_cache_ == tail_) {
        head_cache_ = ctl_->head.load(std::memory_order_acquire);
        if (head_cache_ == tail_)
          return ring_status::empty;
        if (head_cache_ < tail_ || head_cache_ - tail_ > capacity_)
          return ring_status::corrupt; // the writer's position is impossible
      }
      auto offset = tail_ & (capacity_ - 1);
      if (offset % 8 != 0 || capacity_ - offset < sizeof(record_header))
        return ring_status::corrupt;
      const auto* rec = reinterpret_cast<const record_header*>(data_ + offset);
      auto len = rec->length;
      if (rec->kind == record_wrap) {
        if (len != capacity_ - offset - sizeof(record_header)
            || head_cache_ - tail_ < capacity_ - offset)
          return ring_status::corrupt;
        tail_ += capacity_ - offset; // skip to the start
        continue;
      }
      auto size = sizeof(record_header) + align8(len);
      if (rec->kind != record_frame || len > max_frame_for(capacity_)
          || size > capacity_ - offset || size > head_cache_ - tail_)
        return ring_status::corrupt;
      frame = data_ + offset + sizeof(record_header);
      n = len;
      next_ = tail_ + size;
      return ring_status::ok;
    }
  }

  /// Consumes the frame returned by the last `peek` (release: the writer may
  /// reuse its bytes afterwards).
  void release() noexcept {
    tail_ = next_;
    ctl_->tail.store(tail_, std::memory_order_release);
  }

  /// Whether a frame may be waiting (cheap check, no side effects).
  bool maybe_ready() const noexcept {
    return ctl_->head.load(std::memory_order_acquire) != tail_;
  }

private:
  ring_control* ctl_ = nullptr;
  const uint8_t* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t tail_ = 0;
  uint64_t head_cache_ = 0;
  uint64_t next_ = 0;
};

} // namespace mycelium::transports::shm
