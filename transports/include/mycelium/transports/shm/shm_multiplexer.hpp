#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/network/default_multiplexer.hpp>

namespace mycelium::transports::shm {

namespace detail {
class ring_poller;
class doorbell_receiver;
} // namespace detail

/// CAF's epoll multiplexer extended with the shared-memory rings of shm
/// links: the middleman's I/O thread services sockets and rings in one loop,
/// so shm links are part of CAF's I/O layer and need no thread of their own.
/// Load it in place of the default backend before creating the system:
///
///     cfg.load<caf::io::middleman, mycelium::transports::shm::shm_multiplexer>();
///
/// (or call `load_middleman(cfg)`). Without shm links it behaves exactly like
/// the default backend: one blocking epoll per event.
///
/// With rings to service, each turn of the loop drains every ring, and polls
/// the sockets without blocking every 64 turns (or when the rings are idle).
/// When the rings stay empty the loop waits according to the links' wait
/// modes: `busy_poll` never sleeps, `spin_then_block` sleeps after
/// `spin_count` empty turns, `block` sleeps at once. To sleep, it marks each
/// incoming ring's `consumer_sleeping`, re-checks the rings and blocks in
/// epoll; a producer that sees the mark sends one datagram to this loop's
/// doorbell (an abstract Unix datagram socket in epoll) after its commit.
/// After a turn that delivered frames the loop yields the CPU once (the
/// woken subscribers often share it), and a busy-polling loop also yields
/// every 64 empty turns, so it does not starve its own process's workers.
///
/// Thread-safety: `add_poller`, `remove_poller` and `doorbell_name` belong to
/// the I/O thread (links call them from their brokers).
class shm_multiplexer : public caf::io::network::default_multiplexer {
public:
  explicit shm_multiplexer(caf::actor_system* sys);
  ~shm_multiplexer() override;

  void run() override;

  /// Starts servicing `p`'s ring. I/O thread only.
  void add_poller(detail::ring_poller* p);

  /// Stops servicing `p` (safe from inside `p`'s own poll). I/O thread only.
  void remove_poller(detail::ring_poller* p);

  /// The abstract socket name producers ring to wake this loop; created with
  /// the first poller. I/O thread only.
  const std::string& doorbell_name();

  /// The shm multiplexer of `sys`, or nullptr when its middleman runs
  /// another backend (or none).
  static shm_multiplexer* of(caf::actor_system& sys) noexcept;

private:
  /// Drains every ring once; true if any frame was taken.
  bool service_rings();
  /// Marks the rings, re-checks them and blocks in epoll.
  void sleep_until_event();
  void recompute_wait();

  std::vector<detail::ring_poller*> pollers_;
  bool removed_ = false; ///< pollers_ holds null slots to compact
  bool busy_poll_ = false;
  uint32_t spin_count_ = 0;
  std::string doorbell_name_;
  std::unique_ptr<detail::doorbell_receiver> doorbell_;
  bool doorbell_active_ = false;
};

/// Loads CAF's middleman with `shm_multiplexer` as its backend.
void load_middleman(caf::actor_system_config& cfg);

} // namespace mycelium::transports::shm
