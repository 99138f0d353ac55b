// reassembly_buffer: the bytes of an incomplete frame between two reads,
// kept like a queue and copied half a page away from their source.
#include <doctest/doctest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "mycelium/transports/reassembly_buffer.hpp"

using mycelium::transports::reassembly_buffer;

namespace {

std::vector<uint8_t> bytes(size_t n, uint8_t first) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<uint8_t> contents(const reassembly_buffer& b) {
  return {b.data(), b.data() + b.size()};
}

size_t page_distance(const void* a, const void* b) {
  auto d = (reinterpret_cast<uintptr_t>(a) - reinterpret_cast<uintptr_t>(b)) % 4096;
  return d;
}

} // namespace

TEST_CASE("reassembly_buffer: assign, append and consume keep the bytes in order") {
  reassembly_buffer b;
  CHECK(b.empty());
  auto first = bytes(100, 0);
  b.assign(first.data(), first.size());
  CHECK(contents(b) == first);
  auto second = bytes(50, 100);
  b.append(second.data(), second.size());
  auto both = first;
  both.insert(both.end(), second.begin(), second.end());
  CHECK(contents(b) == both);
  b.consume(30);
  CHECK(contents(b) == std::vector<uint8_t>(both.begin() + 30, both.end()));
  b.consume(b.size());
  CHECK(b.empty());
  // Appending to an empty buffer is assigning.
  b.append(second.data(), second.size());
  CHECK(contents(b) == second);
  b.clear();
  CHECK(b.empty());
  CHECK(b.size() == 0);
}

TEST_CASE("reassembly_buffer: growing keeps the waiting bytes") {
  reassembly_buffer b;
  std::vector<uint8_t> expected;
  // Many small appends after a consume: the start moves, the storage grows.
  auto head = bytes(10, 7);
  b.assign(head.data(), head.size());
  expected = head;
  b.consume(4);
  expected.erase(expected.begin(), expected.begin() + 4);
  for (int i = 0; i < 300; ++i) {
    auto chunk = bytes(1000, static_cast<uint8_t>(i));
    b.append(chunk.data(), chunk.size());
    expected.insert(expected.end(), chunk.begin(), chunk.end());
  }
  CHECK(b.size() == expected.size());
  CHECK(contents(b) == expected);
  CHECK(b.capacity() >= b.size());
}

TEST_CASE("reassembly_buffer: a copy lands half a page away from its source") {
  // Sources at every offset within a page, as a socket's read buffer may
  // be placed anywhere by the allocator.
  std::vector<uint8_t> src(64 * 1024 + 4096);
  reassembly_buffer b;
  for (size_t shift : {0u, 16u, 100u, 2048u, 4000u, 4095u}) {
    const uint8_t* p = src.data() + shift;
    b.assign(p, 64 * 1024);
    CHECK(page_distance(b.data(), p) == 2048);
    CHECK(std::equal(b.data(), b.data() + b.size(), p));
  }
}

TEST_CASE("reassembly_buffer: consuming more than waits empties it") {
  reassembly_buffer b;
  auto x = bytes(8, 1);
  b.assign(x.data(), x.size());
  b.consume(100);
  CHECK(b.empty());
  b.assign(nullptr, 0);
  CHECK(b.empty());
}
