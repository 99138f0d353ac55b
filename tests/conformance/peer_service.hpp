#pragma once

// The services of the link conformance suite, shared by the peer program
// (mycelium-link-peer) and the driver test. Test code: counters are plain
// members because each service handles one message at a time.

#include <cstdint>
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "link_test.hpp"
#include "mycelium/actors/service.hpp"

namespace mycelium::conformance {

namespace lt = mycelium::linktest;

/// FNV-1a over a payload: what `data.checksum` carries.
inline uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (auto b : bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return h;
}

/// A deterministic payload of `n` bytes for sequence number `seq`.
inline std::vector<uint8_t> make_payload(uint64_t seq, size_t n) {
  std::vector<uint8_t> v(n);
  uint64_t x = seq * 0x9E3779B97F4A7C15ull + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

/// Payload size of message `seq` in a stream with sizes up to `max_size`.
inline size_t size_of(uint64_t seq, size_t max_size) {
  uint64_t x = (seq + 11) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return max_size == 0 ? 0 : static_cast<size_t>(x % (max_size + 1));
}

inline lt::data make_data(uint64_t seq, size_t max_size) {
  lt::data d;
  d.seq = seq;
  d.payload = make_payload(seq, size_of(seq, max_size));
  d.checksum = fnv1a(d.payload);
  return d;
}

/// Counts and checks a stream of `data` (sequence starts at 1, +1 each).
struct data_checker {
  uint64_t received = 0;
  uint64_t bytes = 0;
  uint64_t order_errors = 0;
  uint64_t checksum_errors = 0;
  uint64_t last_seq = 0;

  void add(const lt::data& d) {
    ++received;
    bytes += d.payload.size();
    if (d.seq != last_seq + 1)
      ++order_errors;
    if (fnv1a(d.payload) != d.checksum)
      ++checksum_errors;
    last_seq = d.seq;
  }
};

/// Everything the driver exercises on the other side of a link:
/// - echoes every `ping` as a `pong` with the same content;
/// - checks `data` (order, checksum) and counts `empty` and `chat`;
/// - answers `report_request` with a `report`;
/// - obeys `command`s: "subscribe probe", "unsubscribe probe",
///   "chat N" (publishes N chats), "send N MAXSIZE" (publishes N data).
class peer_service : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    subscribe<lt::ping>([this](const lt::ping& p) {
      publish(lt::pong{p.seq, p.payload});
    });
    subscribe<lt::data>([this](const lt::data& d) { data_.add(d); });
    subscribe<lt::empty>([this](const lt::empty&) { ++empties_; });
    subscribe<lt::chat>([this](const lt::chat&) { ++chats_; });
    subscribe<lt::report_request>([this](const lt::report_request& r) {
      lt::report rep;
      rep.token = r.token;
      rep.received = data_.received;
      rep.bytes = data_.bytes;
      rep.order_errors = data_.order_errors;
      rep.checksum_errors = data_.checksum_errors;
      rep.last_seq = data_.last_seq;
      rep.probes = probes_;
      rep.chats = chats_;
      rep.empties = empties_;
      publish(rep);
    });
    subscribe<lt::command>([this](const lt::command& c) { run(c.text); });
  }

private:
  void run(const std::string& text) {
    std::istringstream in{text};
    std::string verb;
    in >> verb;
    if (verb == "subscribe") {
      subscribe<lt::probe>([this](const lt::probe&) { ++probes_; });
    } else if (verb == "unsubscribe") {
      unsubscribe<lt::probe>();
    } else if (verb == "chat") {
      uint64_t n = 0;
      in >> n;
      for (uint64_t i = 1; i <= n; ++i)
        publish(lt::chat{bus().node_name(), i});
    } else if (verb == "send" || verb == "send-from") {
      uint64_t from = 1;
      if (verb == "send-from")
        in >> from;
      uint64_t n = 0;
      size_t max_size = 0;
      in >> n >> max_size;
      send_from(from, n, max_size);
    }
  }

  /// Publishes data `from`..`n` in slices of 1,000, continuing through a
  /// command to itself, so that a loop-placed peer lets its I/O loop write
  /// between slices (a socket link is drained by that very loop: one handler
  /// that publishes more than send_queue messages would be refused, see
  /// docs/services.md). A refused message is sent again in the next slice.
  void send_from(uint64_t from, uint64_t n, size_t max_size) {
    auto i = from;
    for (auto end = std::min(n, from + 999); i <= end; ++i)
      if (publish(make_data(i, max_size)) == mycelium::publish_status::back_pressured)
        break;
    if (i <= n)
      publish(lt::command{"send-from " + std::to_string(i) + " " + std::to_string(n) + " "
                          + std::to_string(max_size)});
  }

  data_checker data_;
  uint64_t probes_ = 0;
  uint64_t chats_ = 0;
  uint64_t empties_ = 0;
};

/// Only the echo part: started by name on a remote node in the BASP test.
class echo_service : public mycelium::service {
public:
  using service::service;

  void on_start() override {
    // `offset` (a parameter, default 0) is added to each pong's seq, so that
    // a test can tell that parameters arrived.
    auto offset = static_cast<uint64_t>(caf::get_or(params(), "offset", int64_t{0}));
    subscribe<lt::ping>([this, offset](const lt::ping& p) {
      publish(lt::pong{p.seq + offset, p.payload});
    });
  }
};

} // namespace mycelium::conformance
