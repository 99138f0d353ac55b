// The shared-memory SPSC ring, exercised in one process on ordinary memory
// laid out exactly as in a segment: empty, full, wrap-around, the largest
// frame, zero-length frames, impossible positions, and a producer and a
// consumer thread racing over a million frames (run it under TSan).
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "mycelium/transports/shm/ring_waiter.hpp"
#include "mycelium/transports/shm/spsc_ring.hpp"

using namespace mycelium::transports::shm;

namespace {

/// A ring control block plus its data area, as a segment would hold them.
struct test_ring {
  explicit test_ring(uint64_t capacity)
    : capacity(capacity), data(new (std::align_val_t{64}) uint8_t[capacity]),
      writer(&ctl, data.get(), capacity), reader(&ctl, data.get(), capacity) {
  }

  struct aligned_delete {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };

  uint64_t capacity;
  ring_control ctl;
  std::unique_ptr<uint8_t[], aligned_delete> data;
  ring_writer writer;
  ring_reader reader;

  /// Reads one frame into a vector; empty optional-like flag via status.
  ring_status read(std::vector<uint8_t>& out) {
    const uint8_t* p = nullptr;
    size_t n = 0;
    auto st = reader.peek(p, n);
    if (st == ring_status::ok) {
      out.assign(p, p + n);
      reader.release();
    }
    return st;
  }
};

std::vector<uint8_t> bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

} // namespace

TEST_CASE("spsc ring: capacities are powers of two; the largest frame is half the ring") {
  CHECK(valid_capacity(64));
  CHECK(valid_capacity(1 << 20));
  CHECK_FALSE(valid_capacity(100));
  CHECK_FALSE(valid_capacity(32));
  CHECK(max_frame_for(1024) == 504);
}

TEST_CASE("spsc ring: an empty ring reads nothing") {
  test_ring r{1024};
  std::vector<uint8_t> out;
  CHECK(r.read(out) == ring_status::empty);
  CHECK_FALSE(r.reader.maybe_ready());
}

TEST_CASE("spsc ring: zero-length and largest frames; larger ones are refused") {
  test_ring r{1024};
  std::vector<uint8_t> out;
  REQUIRE(r.writer.write(nullptr, 0) == ring_status::ok);
  REQUIRE(r.read(out) == ring_status::ok);
  CHECK(out.empty());
  auto big = bytes(r.writer.max_frame(), 3);
  REQUIRE(r.writer.write(big.data(), big.size()) == ring_status::ok);
  REQUIRE(r.read(out) == ring_status::ok);
  CHECK(out == big);
  auto too_big = bytes(r.writer.max_frame() + 1, 1);
  CHECK(r.writer.write(too_big.data(), too_big.size()) == ring_status::too_large);
  CHECK(r.read(out) == ring_status::empty); // nothing half-written
}

TEST_CASE("spsc ring: a full ring back-pressures until the reader frees space") {
  test_ring r{256};
  auto f = bytes(40, 9); // 48 bytes per record
  int written = 0;
  while (r.writer.write(f.data(), f.size()) == ring_status::ok)
    ++written;
  CHECK(written == 5); // 5 * 48 = 240 of 256 bytes
  CHECK(r.writer.write(f.data(), f.size()) == ring_status::back_pressured);
  std::vector<uint8_t> out;
  REQUIRE(r.read(out) == ring_status::ok);
  CHECK(out == f);
  CHECK(r.writer.write(f.data(), f.size()) == ring_status::ok); // wraps
  for (int i = 0; i < 5; ++i) {
    REQUIRE(r.read(out) == ring_status::ok);
    CHECK(out == f);
  }
  CHECK(r.read(out) == ring_status::empty);
}

TEST_CASE("spsc ring: frames of every size wrap around intact") {
  test_ring r{512};
  std::vector<uint8_t> out;
  uint64_t seq = 0;
  for (int round = 0; round < 50; ++round)
    for (size_t n = 0; n <= r.writer.max_frame(); n += 13) {
      auto f = bytes(n, static_cast<uint8_t>(seq++));
      REQUIRE(r.writer.write(f.data(), f.size()) == ring_status::ok);
      REQUIRE(r.read(out) == ring_status::ok);
      REQUIRE(out == f);
    }
  CHECK(r.ctl.head.load() > 100 * r.capacity); // wrapped many times
  CHECK(r.ctl.head.load() == r.ctl.tail.load());
}

TEST_CASE("spsc ring: impossible positions or records are reported, never followed") {
  test_ring r{256};
  std::vector<uint8_t> out;
  SUBCASE("head behind tail") {
    r.ctl.tail = 64;
    ring_reader reader{&r.ctl, r.data.get(), r.capacity};
    r.ctl.head = 8;
    const uint8_t* p = nullptr;
    size_t n = 0;
    CHECK(reader.peek(p, n) == ring_status::corrupt);
  }
  SUBCASE("a record longer than the ring") {
    auto f = bytes(8, 1);
    REQUIRE(r.writer.write(f.data(), f.size()) == ring_status::ok);
    reinterpret_cast<record_header*>(r.data.get())->length = 4000;
    CHECK(r.read(out) == ring_status::corrupt);
  }
  SUBCASE("an unknown record kind") {
    auto f = bytes(8, 1);
    REQUIRE(r.writer.write(f.data(), f.size()) == ring_status::ok);
    reinterpret_cast<record_header*>(r.data.get())->kind = 7;
    CHECK(r.read(out) == ring_status::corrupt);
  }
  SUBCASE("a reader position ahead of the writer") {
    auto f = bytes(100, 1); // 112-byte records: two fit, the third re-reads tail
    REQUIRE(r.writer.write(f.data(), f.size()) == ring_status::ok);
    REQUIRE(r.writer.write(f.data(), f.size()) == ring_status::ok);
    r.ctl.tail = 4096;
    CHECK(r.writer.write(f.data(), f.size()) == ring_status::corrupt);
  }
}

TEST_CASE("spsc ring: a producer and a consumer thread, a million frames, in order") {
  test_ring r{64 * 1024};
  constexpr uint64_t count = 1000000;
  std::thread producer{[&] {
    std::vector<uint8_t> f;
    for (uint64_t i = 0; i < count; ++i) {
      auto n = 8 + (i * 2654435761u) % 300;
      f.resize(n);
      std::memcpy(f.data(), &i, 8);
      for (size_t k = 8; k < n; ++k)
        f[k] = static_cast<uint8_t>(i + k);
      while (r.writer.write(f.data(), f.size()) == ring_status::back_pressured)
        std::this_thread::yield();
    }
  }};
  uint64_t next = 0;
  uint64_t bad = 0;
  while (next < count) {
    const uint8_t* p = nullptr;
    size_t n = 0;
    auto st = r.reader.peek(p, n);
    if (st == ring_status::empty) {
      std::this_thread::yield();
      continue;
    }
    REQUIRE(st == ring_status::ok);
    uint64_t id;
    std::memcpy(&id, p, 8);
    bool ok = id == next && n == 8 + (id * 2654435761u) % 300;
    for (size_t k = 8; ok && k < n; ++k)
      ok = p[k] == static_cast<uint8_t>(id + k);
    bad += ok ? 0 : 1;
    r.reader.release();
    ++next;
  }
  producer.join();
  CHECK(bad == 0);
  CHECK(next == count);
}

TEST_CASE("spsc ring waiter: every mode wakes for each frame; an empty wait times out") {
  for (auto mode : {mycelium::transports::wait_mode::busy_poll,
                    mycelium::transports::wait_mode::spin_then_block,
                    mycelium::transports::wait_mode::block}) {
    CAPTURE(to_string(mode));
    test_ring r{4096};
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(wait_for_data(r.reader, r.ctl, mode, std::chrono::microseconds(5), std::chrono::milliseconds(20)));
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(20));
    constexpr uint64_t count = 20000;
    std::thread producer{[&] {
      for (uint64_t i = 0; i < count; ++i) {
        while (r.writer.write(&i, sizeof(i)) == ring_status::back_pressured)
          std::this_thread::yield();
        notify_consumer(r.ctl);
      }
    }};
    uint64_t next = 0;
    bool timed_out = false;
    while (next < count && !timed_out) {
      if (!wait_for_data(r.reader, r.ctl, mode, std::chrono::microseconds(5), std::chrono::seconds(10))) {
        timed_out = true; // a lost wake-up would end here
        break;
      }
      const uint8_t* p = nullptr;
      size_t n = 0;
      while (r.reader.peek(p, n) == ring_status::ok) {
        uint64_t v = 0;
        std::memcpy(&v, p, sizeof(v));
        CHECK(v == next);
        ++next;
        r.reader.release();
      }
    }
    producer.join();
    CHECK_FALSE(timed_out);
    CHECK(next == count);
  }
}

TEST_CASE("spsc ring: claim and commit encode in place, wrap, and respect the reader") {
  test_ring r{256}; // records: 8-byte header + frame, 8-aligned
  uint8_t* dst = nullptr;
  size_t granted = 0;
  SUBCASE("a claim grants the contiguous free run; commit publishes the actual size") {
    REQUIRE(r.writer.claim(8, 1000, dst, granted) == ring_status::ok);
    CHECK(granted == r.writer.max_frame() - (r.writer.max_frame() % 8)); // capped, 8-aligned
    auto v = bytes(13, 1);
    std::memcpy(dst, v.data(), v.size());
    std::vector<uint8_t> out;
    CHECK(r.read(out) == ring_status::empty); // nothing visible before commit
    r.writer.commit(v.size());
    REQUIRE(r.read(out) == ring_status::ok);
    CHECK(out == v);
  }
  SUBCASE("an uncommitted claim leaves nothing behind") {
    REQUIRE(r.writer.claim(8, 64, dst, granted) == ring_status::ok);
    CHECK(granted == 64);
    std::memset(dst, 0xAB, granted); // written, then abandoned
    auto v = bytes(20, 3);
    REQUIRE(r.writer.write(v.data(), v.size()) == ring_status::ok);
    std::vector<uint8_t> out;
    REQUIRE(r.read(out) == ring_status::ok);
    CHECK(out == v);
    CHECK(r.read(out) == ring_status::empty);
  }
  SUBCASE("near the end of the ring a claim wraps to the start") {
    // Fill to 200 of 256 bytes, free 176 of it again: 56 bytes to the end.
    auto big = bytes(88, 5); // record 96
    auto mid = bytes(96, 6); // record 104
    REQUIRE(r.writer.write(big.data(), big.size()) == ring_status::ok);
    REQUIRE(r.writer.write(mid.data(), mid.size()) == ring_status::ok);
    std::vector<uint8_t> out;
    REQUIRE(r.read(out) == ring_status::ok); // frees 96
    // At offset 200: 56 to the end, so a claim of at least 64 must wrap.
    REQUIRE(r.writer.claim(64, 64, dst, granted) == ring_status::ok);
    CHECK(dst == r.data.get() + 8); // the frame starts after a record header at 0
    CHECK(granted == 64);
    auto v = bytes(60, 9);
    std::memcpy(dst, v.data(), v.size());
    r.writer.commit(v.size());
    REQUIRE(r.read(out) == ring_status::ok);
    CHECK(out == mid);
    REQUIRE(r.read(out) == ring_status::ok); // skips the wrap record
    CHECK(out == v);
  }
  SUBCASE("a full ring refuses a claim until the reader frees room") {
    auto v = bytes(120, 2); // record 128: two fill the ring
    REQUIRE(r.writer.write(v.data(), v.size()) == ring_status::ok);
    REQUIRE(r.writer.write(v.data(), v.size()) == ring_status::ok);
    CHECK(r.writer.claim(8, 64, dst, granted) == ring_status::back_pressured);
    std::vector<uint8_t> out;
    REQUIRE(r.read(out) == ring_status::ok);
    REQUIRE(r.writer.claim(8, 64, dst, granted) == ring_status::ok);
    CHECK(granted == 64);
    CHECK(r.writer.claim(200, 100, dst, granted) == ring_status::too_large);
  }
}
