// The connection state machine of a Unix, TCP or shared-memory link, the
// same for every transport: life cycle (connected, up, closed, exited),
// what ties the connection to the bus (the peer's subscriptions, our
// interest, the routing snapshot), liveness ticks and heartbeats, link
// events, and what the link core reports. It moves bytes through its
// socket_transport and, for kind shm, data through its shm_transport. The
// broker behavior that drives a connection is here too.

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <caf/behavior.hpp>
#include <caf/io/broker.hpp>
#include <caf/message.hpp>
#include <caf/message_handler.hpp>

#include "link_shared.hpp"
#include "mycelium/bus/route_cache.hpp"
#include "mycelium/transports/direct_writer.hpp"
#include "mycelium/transports/link_listener.hpp"
#include "mycelium/transports/link_protocol.hpp"
#include "shm_transport.hpp"
#include "socket_transport.hpp"

namespace mycelium::transports::detail {

/// What a connection tells whoever reconnects it (the connector). An
/// accepted connection has none: its broker quits when it closes.
/// Thread-safety: called by the connection's broker only.
class reconnector {
public:
  virtual ~reconnector();
  /// The link is up: the next failure starts the backoff afresh.
  virtual void on_up() = 0;
  /// The connection closed while the link keeps running: try again later.
  virtual void on_lost() = 0;
};

/// One connection (accepted, or the connector's current one) and what the
/// link protocol reports about it. Lives inside its broker's behavior.
/// "Up" means the data path works both ways: socket links once the hello
/// passed, shared-memory links once both sides also mapped the segment.
///
/// Thread-safety: touched only by its broker (the send gate it creates is
/// shared with publishers, see send_gate).
class connection final : public link_listener, private direct_writer {
public:
  /// `r`: the connector that made it, or null for an accepted connection.
  connection(caf::io::broker* self, std::shared_ptr<link_shared> sh,
             reconnector* r);

  bool connected() const noexcept { return sock_.is_open(); }

  // -- life cycle ------------------------------------------------------------------

  /// A new connection on scribe `hdl`: starts the handshake and the ticks.
  void on_connected(caf::io::connection_handle hdl);

  /// Ends the connection (`reason` none: a goodbye), tells the bus and the
  /// link's state, then reconnects (connector) or quits the broker.
  void close(errc reason, const std::string& text);

  /// The broker terminated: the link forgets this connection.
  void on_exit();

  /// Clean stop: tells the peer before the connection closes, so that it
  /// logs a goodbye instead of a lost peer.
  void say_goodbye();

  // -- broker events -----------------------------------------------------------------

  void on_bytes(const std::vector<char>& buf);
  /// Bytes the loop's poller read (outside the broker's message handling):
  /// an end they cause is posted to the broker (`on_polled_close`).
  void on_polled_bytes(const char* data, size_t size);
  void on_polled_close(uint64_t epoch);
  /// The scribe saw the end of the stream (CAF's `connection_closed_msg`).
  void on_stream_closed();
  void on_transferred(uint64_t n) { sock_.on_transferred(n); }
  void on_tick(uint64_t epoch);
  void on_ring_fault(uint64_t epoch, errc code, const std::string& text);
  void on_overflow();

  /// A message from the bus (a subscription of the peer), to send.
  void on_bus_message(const caf::message& msg);

  /// A message from a publisher on the I/O loop, handed over by the send
  /// gate (see direct_writer), to send.
  void write(uint32_t type_id, const void* value) noexcept override;

  /// The local bus's interest changed: tells the peer.
  void advertise_interest();

  // -- link_listener -----------------------------------------------------------------

  void on_established(const wire::hello&) override;
  void on_refusing(const wire::refuse& why) override;
  void on_refused(const wire::refuse& why) override;
  void on_interest(uint32_t type_id, bool add) override;
  void on_data(uint32_t type_id, caf::message msg) override;
  /// A value decoded from the stream or a ring (on the stack): loop services
  /// handle it directly, mailboxes get it boxed once.
  void on_value(uint32_t type_id, void* value,
                caf::message (*box)(uint32_t, void*)) override;
  void on_bad_frame(errc code, const std::string& text) override;
  void on_goodbye() override;
  errc on_shm_attach(const wire::shm_attach& x, std::string& why) override;
  void on_error(errc code, const std::string& text) override;

private:
  bool is_shm() const noexcept { return sh_->cfg.kind == link_kind::shm; }

  /// Whether this is the connecting side (it has a reconnector).
  bool connecting() const noexcept { return reconnector_ != nullptr; }

  /// The link is up: data flows (see the class comment).
  void mark_up();

  /// Tells the node's services (`link_event` on the local bus).
  void publish_event(bool up, errc reason, const std::string& text);

  /// Ends everything that ties this connection to the bus: the peer's
  /// subscriptions, the interest watch, the cached routing table (it holds
  /// this broker's own subscriptions, i.e. strong references to itself, so
  /// the broker would never die), and the frames not yet handed to the
  /// kernel, which are lost with the connection and counted.
  void leave_bus();

  /// Publishes the peer's current interest into the link's state; call with
  /// `sh_->mtx` held.
  void publish_peer_interest_locked();

  void deliver(mycelium::payload_ref& p);

  /// Counts a data frame that could not be written (`e` from the link core)
  /// and frees its slot.
  void count_unsent(errc e);

  /// Closes after `read` returned `ok` false or a callback faulted; no-op
  /// otherwise.
  void close_if_ended(bool ok);

  /// Resets the connection once the current batch of bytes is handled (for
  /// failures inside protocol callbacks that cannot fail themselves).
  void fault(errc code, std::string text);

  /// Logs a refusal once per distinct text: a connecting link retries a
  /// refused peer with backoff and would repeat it every few seconds.
  void log_refusal(const std::string& text);

  std::chrono::milliseconds tick_period() const;
  void schedule_tick();

  caf::io::broker* self_;
  std::shared_ptr<link_shared> sh_;
  link_protocol proto_;
  reconnector* reconnector_;
  std::shared_ptr<send_gate> gate_;
  socket_transport sock_;
  shm_transport shm_; ///< used by kind shm only
  bool established_ = false; ///< the hello passed
  bool up_ = false;          ///< data flows (see mark_up)
  uint64_t epoch_ = 0;
  std::map<uint32_t, subscription_ptr> subs_;
  std::set<uint32_t> advertised_; ///< socket kinds; shm: see shm_transport
  uint64_t watch_id_ = 0;
  /// Set by the bus watcher, cleared when the broker reads the bus's
  /// interest: a socket connection's interest may be stale (see `write`).
  std::shared_ptr<std::atomic<bool>> interest_dirty_ =
    std::make_shared<std::atomic<bool>>(false);
  std::chrono::steady_clock::time_point last_rx_;
  std::chrono::steady_clock::time_point last_tick_;
  route_cache routes_{sh_->bus.get()}; ///< for what the peer sends (sh_ is set first)
  const char* type_name_ = nullptr; ///< of `type_name_id_`, for the bus's counters
  uint32_t type_name_id_ = 0;
  std::string last_refusal_;
  errc close_reason_ = errc::peer_lost;
  std::string close_text_;
  bool polled_end_ = false; ///< a polled read ended the protocol
  bool polled_close_pending_ = false; ///< its `polled_close_atom` is on the way
  errc fault_ = errc::none;
  std::string fault_text_;
};

/// The behavior of a broker that runs `c`; `more` handles further messages
/// (the connector's).
caf::behavior connection_behavior(caf::io::broker* self,
                                  std::shared_ptr<connection> c,
                                  caf::message_handler more = {});

} // namespace mycelium::transports::detail
