// The CAF brokers behind Unix, TCP and shared-memory links: one acceptor per
// listening link, one broker per connection. Every broker is serviced by the
// middleman's I/O loop; none owns a thread. A shared-memory link is a Unix
// socket connection (handshake, interest, heartbeats, goodbye, instant
// notice of a dead peer) whose data frames travel through a pair of rings
// (shm/shm_endpoint.hpp) that the node's io_loop polls.

#include <algorithm>
#include <chrono>
#include <deque>
#include <random>
#include <set>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <unistd.h>

#include "link_shared.hpp"
#include "mycelium/transports/link_event.hpp"
#include "mycelium/actors/log.hpp"
#include "shm/shm_endpoint.hpp"
#include "socket_ops.hpp"

namespace mycelium::transports::detail {

namespace {

using namespace std::chrono;

using tick_atom = caf::atom_constant<caf::atom("mlTick")>;
using interest_atom = caf::atom_constant<caf::atom("mlInterest")>;
using connect_atom = caf::atom_constant<caf::atom("mlConnect")>;
using connected_atom = caf::atom_constant<caf::atom("mlConnOk")>;
using connect_failed_atom = caf::atom_constant<caf::atom("mlConnFail")>;
using overflow_atom = caf::atom_constant<caf::atom("mlOverflow")>;
using ring_fault_atom = caf::atom_constant<caf::atom("mlRingErr")>;

/// Bytes requested per read; several frames arrive in one read.
constexpr size_t read_chunk = 64 * 1024;

/// One connection (accepted, or the connector's current one) and what the
/// link protocol reports about it. Lives inside its broker's behavior;
/// touched only by that broker.
class connection final : public link_protocol::listener {
public:
  connection(caf::io::broker* self, std::shared_ptr<link_shared> sh,
             bool connector)
    : self_(self), sh_(std::move(sh)),
      proto_(sh_->schema, sh_->self, sh_->cfg.secret, sh_->cfg.max_payload),
      connector_(connector), backoff_(sh_->cfg.reconnect_min),
      rng_(static_cast<uint32_t>(std::random_device{}())) {
    caf::weak_actor_ptr weak{self->ctrl()};
    gate_ = std::make_shared<send_gate>(
      sh_->cfg.send_queue, sh_->cfg.overflow,
      duration_cast<nanoseconds>(sh_->cfg.block_timeout), [weak] {
        if (auto p = weak.lock())
          caf::anon_send(caf::actor_cast<caf::actor>(p), overflow_atom::value);
      });
    std::lock_guard<std::mutex> guard{sh_->mtx};
    sh_->gates.push_back(gate_);
  }

  std::string who() const {
    return sh_->self.node + "/link:" + sh_->cfg.name;
  }

  bool is_shm() const noexcept {
    return sh_->cfg.kind == link_kind::shm;
  }

  // -- connection life cycle ---------------------------------------------------

  void on_connected(caf::io::connection_handle hdl) {
    hdl_ = hdl;
    connected_ = true;
    fault_ = errc::none;
    fault_text_.clear();
    established_ = false;
    up_ = false;
    ++epoch_;
    if (auto* l = loop(); l != nullptr && !is_shm())
      idle_ = l->request_idle(sh_->cfg.idle()); // shm: its poller asks
    self_->configure_read(hdl, caf::io::receive_policy::at_most(read_chunk));
    self_->ack_writes(hdl, true);
    appended_ = written_ = 0;
    pending_.clear();
    out_.clear();
    proto_.start(out_);
    send_out(false);
    last_rx_ = last_tx_ = last_tick_ = steady_clock::now();
    schedule_tick();
  }

  void close(errc reason, const std::string& text) {
    if (!connected_)
      return;
    connected_ = false;
    idle_.reset();
    self_->close(hdl_); // graceful: a queued refusal still goes out
    if (shm_)
      shm_->finish(); // frames the peer wrote before it left still count
    leave_bus();
    drop_endpoint();
    advertised_.clear();
    interest_retry_ = false;
    established_ = false;
    bool was_up = up_;
    if (up_) {
      up_ = false;
      sh_->disconnects.fetch_add(1, std::memory_order_relaxed);
      if (reason != errc::none) // a goodbye was logged as info already
        log(log_level::warning, who(),
            "connection to " + proto_.peer_name() + " lost (" + to_string(reason)
              + "): " + text);
    }
    {
      std::lock_guard<std::mutex> guard{sh_->mtx};
      sh_->peers.erase(self_->id());
      sh_->recompute_state_locked();
      sh_->last_error = text; // also a goodbye: says why the link went down
      sh_->cv.notify_all();
    }
    if (was_up) // after the state: a service that reacts sees the link down
      publish_event(false, reason, text);
    if (connector_ && !stopping())
      schedule_reconnect();
    else
      self_->quit();
  }

  void on_exit() {
    if (up_) {
      up_ = false;
      publish_event(false, errc::none, "the link was stopped");
    }
    leave_bus();
    drop_endpoint();
    idle_.reset();
    std::lock_guard<std::mutex> guard{sh_->mtx};
    // Unsubscribed above; a publisher still on an older routing snapshot
    // may count on the gate for a moment after this (the topic counts it too).
    sh_->retire_locked(gate_);
    sh_->peers.erase(self_->id());
    sh_->brokers.erase(self_->id());
    sh_->recompute_state_locked();
    sh_->cv.notify_all();
  }

  /// Ends everything that ties this connection to the bus: the peer's
  /// subscriptions, the interest watch, the cached routing table (it holds
  /// this broker's own subscriptions, i.e. strong references to itself, so
  /// the broker would never die), and the frames not yet handed to the
  /// kernel, which are lost with the connection and counted.
  void leave_bus() {
    for (auto& kv : subs_)
      sh_->bus->unsubscribe(kv.second);
    subs_.clear();
    table_.reset();
    if (watch_id_ != 0) {
      sh_->bus->unwatch(watch_id_);
      watch_id_ = 0;
    }
    if (!pending_.empty()) {
      sh_->dropped_link_down.fetch_add(pending_.size(), std::memory_order_relaxed);
      gate_->release(pending_.size());
      pending_.clear();
    }
  }

  // -- connecting (connector only) ---------------------------------------------

  void try_connect() {
    if (connected_ || stopping())
      return;
    auto& cfg = sh_->cfg;
    if (cfg.kind != link_kind::tcp) {
      auto fd = connect_unix(cfg.address); // local: never blocks
      if (fd)
        on_connected(self_->add_scribe(*fd));
      else
        connect_failed(render(fd.error()));
      return;
    }
    // A TCP connect may take up to connect_timeout: run it in a short-lived
    // detached CAF actor so the I/O loop never waits for it.
    self_->system().spawn<caf::detached>(
      [](caf::blocking_actor* a, caf::actor broker, link_config c) {
        auto fd = connect_tcp(c.address, c.port, c.connect_timeout);
        if (fd)
          a->send(broker, connected_atom::value, *fd);
        else
          a->send(broker, connect_failed_atom::value, render(fd.error()));
      },
      caf::actor_cast<caf::actor>(self_), cfg);
  }

  void on_connect_result(int fd) {
    if (connected_ || stopping()) {
      ::close(fd);
      return;
    }
    on_connected(self_->add_scribe(fd));
  }

  void connect_failed(const std::string& text) {
    sh_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    if (text != last_connect_error_) { // once per distinct error, not per try
      last_connect_error_ = text;
      log(log_level::warning, who(), text + "; retrying with backoff");
    }
    {
      std::lock_guard<std::mutex> guard{sh_->mtx};
      sh_->last_error = text;
      sh_->recompute_state_locked(); // "starting" becomes "down"
      sh_->cv.notify_all();
    }
    schedule_reconnect();
  }

  void schedule_reconnect() {
    std::uniform_real_distribution<double> jitter{1.0, 1.5};
    auto delay = duration_cast<milliseconds>(backoff_ * jitter(rng_));
    backoff_ = std::min(backoff_ * 2, sh_->cfg.reconnect_max);
    caf::delayed_anon_send(self_handle(), delay, connect_atom::value);
  }

  // -- I/O events ------------------------------------------------------------------

  void on_bytes(const std::vector<char>& buf) {
    mycelium::detail::bump(sh_->bytes_received, buf.size()); // loop thread only
    last_rx_ = steady_clock::now();
    out_.clear();
    bool ok = proto_.consume(reinterpret_cast<const uint8_t*>(buf.data()),
                             buf.size(), out_, *this);
    send_out(false);
    if (!ok && connected_)
      close(close_reason_, close_text_);
    else if (fault_ != errc::none && connected_) {
      log(log_level::error, who(), fault_text_ + "; resetting the connection");
      close(fault_, fault_text_);
    }
  }

  void on_transferred(uint64_t n) {
    written_ += n;
    size_t done = 0;
    while (!pending_.empty() && pending_.front() <= written_) {
      pending_.pop_front();
      ++done;
    }
    if (done > 0)
      gate_->release(done);
  }

  void on_tick(uint64_t epoch) {
    if (epoch != epoch_ || !connected_)
      return;
    auto now = steady_clock::now();
    auto& cfg = sh_->cfg;
    // If this tick itself comes late, our own I/O thread was stalled (e.g.
    // by a flood on another connection of the same CAF middleman); bytes
    // from the peer may be waiting unread. Judge the peer only after one
    // more period in which the I/O loop has had a chance to read them.
    auto late = now - last_tick_ > 2 * tick_period();
    last_tick_ = now;
    if (late) {
      schedule_tick();
      return;
    }
    if (shm_) {
      if (auto gone = shm_->check_peer(); !gone.empty()) {
        close(errc::peer_lost, gone);
        return;
      }
    }
    if (now - last_rx_ > cfg.peer_timeout) {
      auto silent = duration_cast<milliseconds>(now - last_rx_).count();
      close(errc::peer_lost,
            "no frame from " + proto_.peer_name() + " for "
              + std::to_string(silent) + " ms (peer_timeout "
              + std::to_string(cfg.peer_timeout.count())
              + " ms): the peer crashed, hangs or the network is down");
      return;
    }
    if (interest_retry_)
      advertise_interest_in_ring();
    if (established_ && now - last_tx_ >= cfg.heartbeat_interval) {
      out_.clear();
      proto_.write_heartbeat(out_);
      send_out(false);
    }
    schedule_tick();
  }

  /// Clean stop: tells the peer before the connection closes, so that it
  /// logs a goodbye instead of a lost peer.
  void say_goodbye() {
    if (!established_)
      return;
    out_.clear();
    proto_.write_goodbye(out_);
    send_out(false);
  }

  void on_ring_fault(uint64_t epoch, errc code, const std::string& text) {
    if (!connected_ || epoch != epoch_)
      return; // about an earlier connection
    log(log_level::error, who(), text + "; resetting the connection");
    close(code, text);
  }

  void on_overflow() {
    if (!established_)
      return;
    auto text = "peer " + proto_.peer_name() + " is too slow: "
                + std::to_string(gate_->capacity())
                + " messages queued; disconnecting it (overflow policy "
                  "disconnect)";
    log(log_level::warning, who(), text);
    close(errc::link_overflow, text);
  }

  // -- messages from the bus ---------------------------------------------------

  void on_bus_message(const caf::message& msg) {
    if (!established_) {
      sh_->dropped_link_down.fetch_add(1, std::memory_order_relaxed);
      gate_->release();
      return;
    }
    out_.clear();
    auto e = proto_.write_data(msg, out_);
    if (e != errc::unknown_type)
      if (auto i = subs_.find(proto_.last_type_id()); i != subs_.end())
        mycelium::detail::bump(i->second->delivered); // counted as handled
    if (e != errc::none) {
      gate_->release();
      if (e == errc::frame_too_large) {
        auto* t = sh_->schema.find(proto_.last_type_id());
        auto text = "a '" + (t ? t->name : std::string{"?"}) + "' message of "
                    + std::to_string(proto_.last_payload_size())
                    + " payload bytes is larger than max_payload "
                    + std::to_string(sh_->cfg.max_payload)
                    + ": not sent (raise max_payload on both sides)";
        // The text first: whoever sees the counter move finds it set.
        sh_->set_error(text);
        if (sh_->frames_too_large.fetch_add(1, std::memory_order_relaxed) == 0)
          log(log_level::error, who(), text);
      } else {
        sh_->bad_frames.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    sh_->frames_sent.fetch_add(1, std::memory_order_relaxed);
    send_out(true);
  }

  void advertise_interest() {
    if (!established_)
      return;
    if (is_shm()) {
      advertise_interest_in_ring();
      return;
    }
    auto want = sh_->bus->interest(self_->ctrl());
    std::set<uint32_t> now(want.begin(), want.end());
    out_.clear();
    for (auto id : now)
      if (advertised_.count(id) == 0 && sh_->schema.find(id) != nullptr)
        proto_.write_interest(id, true, out_);
    for (auto id : advertised_)
      if (now.count(id) == 0)
        proto_.write_interest(id, false, out_);
    advertised_.swap(now);
    send_out(false);
  }

  /// Shared memory: interest travels in the ring, in order with the data
  /// (over the socket it could overtake data sent after it, and the peer
  /// would answer before it knew we listen). A full ring is retried on the
  /// next tick; `advertised_` holds only what was written.
  void advertise_interest_in_ring() {
    interest_retry_ = false;
    if (!shm_)
      return; // the connecting side advertises once it attached
    auto want = sh_->bus->interest(self_->ctrl());
    std::set<uint32_t> now(want.begin(), want.end());
    auto ch = shm_->channel();
    for (auto id : now)
      if (advertised_.count(id) == 0 && sh_->schema.find(id) != nullptr) {
        if (!ch->push_interest(id, true)) {
          interest_retry_ = true;
          return;
        }
        advertised_.insert(id);
      }
    for (auto i = advertised_.begin(); i != advertised_.end();) {
      if (now.count(*i) != 0) {
        ++i;
        continue;
      }
      if (!ch->push_interest(*i, false)) {
        interest_retry_ = true;
        return;
      }
      i = advertised_.erase(i);
    }
  }

  bool stopping() const {
    std::lock_guard<std::mutex> guard{sh_->mtx};
    return sh_->stopping;
  }

  // -- link_protocol::listener -------------------------------------------------

  /// The link is up: data flows (socket links: the hello passed; shared
  /// memory: both sides also mapped the segment).
  void mark_up() {
    up_ = true;
    backoff_ = sh_->cfg.reconnect_min;
    last_connect_error_.clear();
    gate_->rearm();
    sh_->connects.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> guard{sh_->mtx};
      auto& v = sh_->peers[self_->id()];
      v.clear();
      for (auto& kv : subs_)
        v.push_back(kv.first);
      sh_->peer = proto_.peer_name();
      sh_->recompute_state_locked();
      sh_->cv.notify_all();
    }
    log(log_level::info, who(), "established with " + proto_.peer_name());
    publish_event(true, errc::none, {});
  }

  /// Tells the node's services (`link_event` on the local bus).
  void publish_event(bool up, errc reason, const std::string& text) {
    link_event ev{sh_->cfg.name, to_string(sh_->cfg.kind), proto_.peer_name(),
                  up, static_cast<uint8_t>(reason), text};
    send_gate::no_block_scope no_block; // on the I/O loop
    sh_->bus->publish(std::move(ev));
  }

  void on_established(const wire::hello&) override {
    established_ = true;
    if (!is_shm())
      mark_up();
    if (is_shm() && !connector_) {
      // The listening side creates the segment and names it before anything
      // else, so the peer can map it before interest arrives.
      auto ep = shm::detail::shm_endpoint::create(*loop(), sh_, endpoint_callbacks());
      if (!ep) {
        fault(static_cast<errc>(ep.error().code()),
              "cannot create the shared-memory segment: " + render(ep.error()));
        return;
      }
      adopt(std::move(*ep));
      proto_.write_shm_attach(shm_->offer(), out_);
    }
    if (watch_id_ == 0) {
      caf::weak_actor_ptr weak{self_->ctrl()};
      watch_id_ = sh_->bus->watch([weak] {
        if (auto p = weak.lock())
          caf::anon_send(caf::actor_cast<caf::actor>(p), interest_atom::value);
      });
    }
    if (is_shm()) {
      advertise_interest_in_ring();
      return;
    }
    // Our interest goes out right after the hello-driven bytes.
    auto want = sh_->bus->interest(self_->ctrl());
    for (auto id : want)
      if (sh_->schema.find(id) != nullptr && advertised_.insert(id).second)
        proto_.write_interest(id, true, out_);
  }

  void on_refusing(const wire::refuse& why) override {
    sh_->refusals_sent.fetch_add(1, std::memory_order_relaxed);
    log_refusal(std::string{"refusing peer ("} + to_string(why.reason) + "): " + why.text);
    close_reason_ = why.reason;
    close_text_ = "refused the peer: " + why.text;
  }

  void on_refused(const wire::refuse& why) override {
    sh_->refusals_received.fetch_add(1, std::memory_order_relaxed);
    log_refusal(std::string{"refused by peer ("} + to_string(why.reason) + "): "
                + why.text);
    close_reason_ = why.reason;
    close_text_ = "refused by the peer: " + why.text;
  }

  void on_interest(uint32_t type_id, bool add) override {
    auto* t = sh_->schema.find(type_id);
    if (add) {
      if (is_shm() && !shm_) {
        fault(errc::protocol_violation,
              "peer " + proto_.peer_name()
                + " subscribed before the shared-memory segment was attached");
        return;
      }
      if (subs_.count(type_id) == 0)
        subs_.emplace(type_id,
                      shm_ ? sh_->bus->subscribe_link(
                               type_id, t->name,
                               caf::strong_actor_ptr{self_->ctrl()}, nullptr,
                               "link:" + sh_->cfg.name, shm_->channel())
                           : sh_->bus->subscribe_link(
                               type_id, t->name,
                               caf::strong_actor_ptr{self_->ctrl()}, gate_,
                               "link:" + sh_->cfg.name));
    } else if (auto i = subs_.find(type_id); i != subs_.end()) {
      sh_->bus->unsubscribe(i->second);
      subs_.erase(i);
    }
    if (!up_)
      return; // published by mark_up
    std::lock_guard<std::mutex> guard{sh_->mtx};
    auto& v = sh_->peers[self_->id()];
    v.clear();
    for (auto& kv : subs_)
      v.push_back(kv.first);
    sh_->cv.notify_all();
  }

  void on_data(uint32_t type_id, caf::message msg) override {
    mycelium::payload_ref p;
    p.type_id = type_id;
    p.value = const_cast<void*>(msg.at(0));
    p.boxed = std::move(msg);
    deliver(p);
  }

  /// A value decoded from the stream or a ring (on the stack): loop services
  /// handle it directly, mailboxes get it boxed once.
  void on_value(uint32_t type_id, void* value,
                caf::message (*box)(uint32_t, void*)) override {
    mycelium::payload_ref p{type_id, value, box, {}};
    deliver(p);
  }

  void deliver(mycelium::payload_ref& p) {
    mycelium::detail::bump(sh_->frames_received); // loop thread only
    auto v = sh_->bus->version();
    if (v != table_version_) {
      table_ = sh_->bus->snapshot();
      table_version_ = v;
      type_name_id_ = 0;
    }
    if (type_name_id_ != p.type_id || type_name_ == nullptr) {
      type_name_ = sh_->schema.find(p.type_id)->name.c_str();
      type_name_id_ = p.type_id;
    }
    // Forwarding runs on the I/O loop: never wait for another link's queue.
    send_gate::no_block_scope no_block;
    sh_->bus->deliver(*table_, type_name_, p, self_->ctrl(), self_->context());
  }

  void on_bad_frame(errc code, const std::string& text) override {
    (void) code;
    sh_->set_error(text); // before the counter, see on_bus_message
    if (sh_->bad_frames.fetch_add(1, std::memory_order_relaxed) == 0)
      log(log_level::error, who(), text + " (dropped; further ones only counted)");
  }

  void on_goodbye() override {
    sh_->goodbyes.fetch_add(1, std::memory_order_relaxed);
    log(log_level::info, who(), proto_.peer_name() + " closed the link (goodbye)");
    close_reason_ = errc::none;
    close_text_ = "the peer closed the link (goodbye)";
  }

  errc on_shm_attach(const wire::shm_attach& x, std::string& why) override {
    if (!is_shm())
      return link_protocol::listener::on_shm_attach(x, why);
    if (!connector_) { // the peer's answer: it mapped our segment
      if (!shm_ || x.segment != shm_->offer().segment) {
        why = "peer " + proto_.peer_name() + " answered with segment '"
              + x.segment + "', which is not the one offered";
        return errc::protocol_violation;
      }
      shm_->peer_attached(x.doorbell);
      mark_up();
      return errc::none;
    }
    if (shm_) {
      why = "peer " + proto_.peer_name() + " offered a second segment";
      return errc::protocol_violation;
    }
    auto ep = shm::detail::shm_endpoint::attach(*loop(), sh_, x.segment,
                                                endpoint_callbacks());
    if (!ep) {
      why = "cannot attach the peer's shared-memory segment: " + render(ep.error());
      return static_cast<errc>(ep.error().code());
    }
    adopt(std::move(*ep));
    shm_->peer_attached(x.doorbell);
    proto_.write_shm_attach(shm_->offer(), out_);
    mark_up();
    advertise_interest_in_ring();
    return errc::none;
  }

  void on_error(errc code, const std::string& text) override {
    log(log_level::error, who(), text + "; resetting the connection");
    close_reason_ = code;
    close_text_ = text;
  }

private:
  /// Starts polling a fresh shared-memory endpoint; its outgoing ring counts
  /// in the link's `queued`.
  void adopt(std::unique_ptr<shm::detail::shm_endpoint> ep) {
    shm_ = std::move(ep);
    shm_->start();
    std::lock_guard<std::mutex> guard{sh_->mtx};
    sh_->channels[shm_->channel().get()] = shm_->channel();
  }

  /// Closes the endpoint (its channel retires its counters into the link's).
  void drop_endpoint() {
    shm_.reset();
  }

  /// Resets the connection once the current batch of bytes is handled (for
  /// failures inside protocol callbacks that cannot fail themselves).
  void fault(errc code, std::string text) {
    if (fault_ == errc::none) {
      fault_ = code;
      fault_text_ = std::move(text);
    }
  }

  io_loop* loop() const {
    return io_loop::of(self_->system()); // checked by link::start for shm
  }

  /// What the shared-memory data path reports back. Ring faults and
  /// publisher-side trouble come from outside the broker's handlers, so they
  /// only post a message (anonymous, see self_handle).
  shm::detail::shm_endpoint::callbacks endpoint_callbacks() {
    shm::detail::shm_endpoint::callbacks cbs;
    cbs.listener = this;
    caf::weak_actor_ptr weak{self_->ctrl()};
    cbs.on_fault = [weak, epoch = epoch_](errc code, const std::string& text) {
      if (auto p = weak.lock())
        caf::anon_send(caf::actor_cast<caf::actor>(p), ring_fault_atom::value,
                       epoch, static_cast<uint8_t>(code), text);
    };
    cbs.on_trouble = [weak, epoch = epoch_](errc code) {
      auto p = weak.lock();
      if (!p)
        return;
      if (code == errc::link_overflow)
        caf::anon_send(caf::actor_cast<caf::actor>(p), overflow_atom::value);
      else
        caf::anon_send(caf::actor_cast<caf::actor>(p), ring_fault_atom::value,
                       epoch, static_cast<uint8_t>(code),
                       std::string{"a publisher found the outgoing ring corrupt"});
    };
    return cbs;
  }

  /// Messages to self go without a sender: CAF 0.17's broker cleanup does
  /// not drain the mailbox, so a pending message whose sender is the broker
  /// itself would keep the terminated broker alive forever (found by LSan).
  caf::actor self_handle() const {
    return caf::actor_cast<caf::actor>(self_);
  }

  /// Logs a refusal once per distinct text: a connecting link retries a
  /// refused peer with backoff and would repeat it every few seconds.
  void log_refusal(const std::string& text) {
    if (text == last_refusal_)
      return;
    last_refusal_ = text;
    log(log_level::error, who(), text);
  }

  milliseconds tick_period() const {
    auto period = std::min(sh_->cfg.heartbeat_interval, sh_->cfg.peer_timeout / 4);
    return period.count() <= 0 ? milliseconds{1} : period;
  }

  void schedule_tick() {
    caf::delayed_anon_send(self_handle(), tick_period(), tick_atom::value, epoch_);
  }

  /// Hands `out_` to the scribe; `gated` frames hold a send-queue slot until
  /// the kernel took their last byte.
  void send_out(bool gated) {
    if (out_.empty() || !connected_)
      return;
    self_->write(hdl_, out_.size(), out_.data());
    appended_ += out_.size();
    if (gated)
      pending_.push_back(appended_);
    sh_->bytes_sent.fetch_add(out_.size(), std::memory_order_relaxed);
    out_.clear();
    last_tx_ = steady_clock::now();
    self_->flush(hdl_);
  }

  caf::io::broker* self_;
  std::shared_ptr<link_shared> sh_;
  link_protocol proto_;
  bool connector_;
  std::shared_ptr<send_gate> gate_;
  caf::io::connection_handle hdl_;
  bool connected_ = false;
  bool established_ = false; ///< the hello passed
  bool up_ = false;          ///< data flows (see mark_up)
  bool interest_retry_ = false; ///< shm: the ring was full, advertise again
  uint64_t epoch_ = 0;
  std::map<uint32_t, subscription_ptr> subs_;
  std::set<uint32_t> advertised_;
  uint64_t watch_id_ = 0;
  std::vector<uint8_t> out_;
  uint64_t appended_ = 0;
  uint64_t written_ = 0;
  std::deque<uint64_t> pending_; ///< end offsets of gated frames in flight
  steady_clock::time_point last_rx_;
  steady_clock::time_point last_tx_;
  steady_clock::time_point last_tick_;
  milliseconds backoff_;
  std::minstd_rand rng_;
  routing_table_ptr table_;
  uint64_t table_version_ = 0;
  const char* type_name_ = nullptr; ///< of `type_name_id_`, for the bus's counters
  uint32_t type_name_id_ = 0;
  std::string last_connect_error_;
  std::string last_refusal_;
  errc close_reason_ = errc::peer_lost;
  std::string close_text_;
  errc fault_ = errc::none;
  std::string fault_text_;
  std::unique_ptr<shm::detail::shm_endpoint> shm_; ///< kind shm, once attached
  loop_registration idle_; ///< socket kinds: the loop idles by our `wait`
};

caf::behavior connection_behavior(caf::io::broker* self,
                                  std::shared_ptr<connection> c) {
  self->attach_functor([c] { c->on_exit(); });
  self->set_exit_handler([self, c](caf::exit_msg& m) {
    c->say_goodbye(); // the scribe's graceful close still sends it
    self->quit(std::move(m.reason));
  });
  self->set_default_handler(
    [c](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      c->on_bus_message(x.move_content_to_message());
      return caf::message{};
    });
  return {
    [c](caf::io::new_data_msg& m) { c->on_bytes(m.buf); },
    [c](const caf::io::data_transferred_msg& m) { c->on_transferred(m.written); },
    [c](const caf::io::connection_closed_msg&) {
      c->close(errc::peer_lost, "the peer closed the connection");
    },
    [c](tick_atom, uint64_t epoch) { c->on_tick(epoch); },
    [c](interest_atom) { c->advertise_interest(); },
    [c](overflow_atom) { c->on_overflow(); },
    [c](ring_fault_atom, uint64_t epoch, uint8_t code, const std::string& text) {
      c->on_ring_fault(epoch, static_cast<errc>(code), text);
    },
    [c](connect_atom) { c->try_connect(); },
    [c](connected_atom, int fd) { c->on_connect_result(fd); },
    [c](connect_failed_atom, const std::string& text) { c->connect_failed(text); },
  };
}

caf::behavior accepted_fn(caf::io::broker* self, caf::io::connection_handle hdl,
                          std::shared_ptr<link_shared> sh) {
  auto c = std::make_shared<connection>(self, sh, false);
  c->on_connected(hdl);
  return connection_behavior(self, c);
}

caf::behavior connector_fn(caf::io::broker* self, std::shared_ptr<link_shared> sh) {
  auto c = std::make_shared<connection>(self, sh, true);
  caf::anon_send(caf::actor_cast<caf::actor>(self), connect_atom::value);
  return connection_behavior(self, c);
}

caf::behavior acceptor_fn(caf::io::broker* self, int fd,
                          std::shared_ptr<link_shared> sh) {
  self->add_doorman(fd);
  self->attach_functor([self, sh] {
    if (sh->cfg.kind != link_kind::tcp)
      ::unlink(sh->cfg.address.c_str());
    std::lock_guard<std::mutex> guard{sh->mtx};
    sh->brokers.erase(self->id());
    sh->cv.notify_all();
  });
  return {
    [self, sh](const caf::io::new_connection_msg& m) {
      auto b = self->fork(accepted_fn, m.handle, sh); // one broker per peer
      std::lock_guard<std::mutex> guard{sh->mtx};
      if (sh->stopping)
        caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
      else
        sh->brokers.emplace(b.id(), b);
    },
    [sh](const caf::io::acceptor_closed_msg&) {
      log(log_level::warning, sh->self.node + "/link:" + sh->cfg.name,
          "listening socket closed");
    },
  };
}

} // namespace

caf::actor spawn_acceptor(caf::actor_system& sys, int fd,
                          std::shared_ptr<link_shared> sh) {
  return sys.middleman().spawn_broker(acceptor_fn, fd, std::move(sh));
}

caf::actor spawn_connector(caf::actor_system& sys,
                           std::shared_ptr<link_shared> sh) {
  return sys.middleman().spawn_broker(connector_fn, std::move(sh));
}

} // namespace mycelium::transports::detail
