#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mycelium::transports {

/// Where a link stands.
enum class link_state : uint8_t {
  starting, ///< no connection attempt finished yet
  down,     ///< no established peer (connecting, backing off or listening)
  up,       ///< at least one peer passed the handshake
  stopped,  ///< `link::stop` ran
};

const char* to_string(link_state x) noexcept;

/// One established peer of a link.
struct peer_info {
  std::string node;              ///< the node name from its hello
  std::vector<uint32_t> interest; ///< type ids it asked for, ascending
};

/// A snapshot of one link's counters. Every message that does not reach the
/// peer is in exactly one of the `dropped_*`, `back_pressured` or
/// `frames_too_large` counters.
struct link_stats {
  std::string name;
  link_state state = link_state::starting;
  size_t peers = 0;               ///< established peers right now
  std::string peer;               ///< last established peer, "node 'N' service 'S' (pid P)"
  uint16_t port = 0;              ///< TCP port listened on (0 otherwise)
  std::vector<uint32_t> peer_interest; ///< type ids the peers asked for
  std::vector<peer_info> peer_list;    ///< each established peer
  size_t queued = 0;              ///< messages in flight towards the peers now
                                  ///< (socket links; an shm link's ring is not counted)
  uint64_t frames_sent = 0;       ///< data frames written to the socket
  uint64_t bytes_sent = 0;        ///< all bytes handed to the socket
  uint64_t frames_received = 0;   ///< data frames received and published
  uint64_t bytes_received = 0;    ///< all bytes read from the socket
  uint64_t dropped_overflow = 0;  ///< refused by drop_newest / disconnect
  uint64_t back_pressured = 0;    ///< refused by block after the timeout
  uint64_t overflow_disconnects = 0; ///< peers dropped by policy disconnect
  uint64_t dropped_link_down = 0; ///< queued when the connection was lost
  uint64_t frames_too_large = 0;  ///< over max_payload, not sent
  uint64_t bad_frames = 0;        ///< received frames that failed to decode
  uint64_t connects = 0;          ///< handshakes completed
  uint64_t disconnects = 0;       ///< established connections that ended
  uint64_t goodbyes = 0;          ///< of those, ended by the peer's clean stop
  uint64_t connect_failures = 0;  ///< connect attempts that failed
  uint64_t refusals_sent = 0;     ///< peers we refused (digest, auth, ...)
  uint64_t refusals_received = 0; ///< times a peer refused us
  // How the socket was driven (diagnostics; on the node's I/O loop only):
  uint64_t socket_writes = 0;     ///< batches the loop wrote with one send()
  uint64_t scribe_writes = 0;     ///< batches (or their rest) left to CAF's scribe
  uint64_t polled_reads = 0;      ///< reads by the loop's poller, not epoll
  std::string last_error;         ///< newest error text, "" if none
};

} // namespace mycelium::transports
