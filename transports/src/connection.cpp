// The connection state machine of every link kind (see connection.hpp) and
// the broker behavior that drives it.

#include "connection.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "link_messages.hpp"
#include "mycelium/actors/log.hpp"
#include "mycelium/transports/link_event.hpp"
#include "mycelium/transports/loop/io_loop.hpp"

namespace mycelium::transports::detail {

using namespace std::chrono;

reconnector::~reconnector() {
  // nop
}

connection::connection(caf::io::broker* self, std::shared_ptr<link_shared> sh,
                       reconnector* r)
  : self_(self), sh_(std::move(sh)),
    proto_(sh_->schema, sh_->self, sh_->cfg.secret, sh_->cfg.max_payload),
    reconnector_(r),
    gate_(std::make_shared<send_gate>(
      sh_->cfg.send_queue, sh_->cfg.overflow,
      duration_cast<nanoseconds>(sh_->cfg.block_timeout),
      [weak = caf::weak_actor_ptr{self->ctrl()}] {
        post_if_alive(weak, overflow_atom::value);
      })),
    sock_(self, sh_, gate_,
          [this](const char* data, size_t size) { on_polled_bytes(data, size); }),
    shm_(self, sh_) {
  // A loop service publishing into this link must not wait for room: only
  // this very thread (the I/O loop) makes room. It writes its frames itself.
  gate_->drained_by(&self->home_system().middleman().backend());
  if (!is_shm() && io_loop::of(self->home_system()) != nullptr)
    gate_->write_directly_to(this); // shm: the ring's channel is the port
  std::lock_guard<std::mutex> guard{sh_->mtx};
  sh_->gates.push_back(gate_);
}

// -- life cycle ----------------------------------------------------------------------

void connection::on_connected(caf::io::connection_handle hdl) {
  fault_ = errc::none;
  fault_text_.clear();
  polled_end_ = false;
  polled_close_pending_ = false;
  established_ = false;
  up_ = false;
  ++epoch_;
  sock_.open(hdl);
  proto_.start(sock_.batch());
  sock_.send(false);
  last_rx_ = last_tick_ = steady_clock::now();
  schedule_tick();
}

void connection::close(errc reason, const std::string& text) {
  if (!sock_.is_open())
    return;
  sock_.close(); // graceful: a queued refusal still goes out
  shm_.finish(); // frames the peer wrote before it left still count
  leave_bus();
  shm_.drop();
  advertised_.clear();
  established_ = false;
  bool was_up = up_;
  if (up_) {
    up_ = false;
    sh_->disconnects.fetch_add(1, std::memory_order_relaxed);
    if (reason != errc::none) // a goodbye was logged as info already
      log(log_level::warning, sh_->who(),
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
  if (reconnector_ != nullptr && !sh_->is_stopping())
    reconnector_->on_lost();
  else
    self_->quit();
}

void connection::on_exit() {
  gate_->write_directly_to(nullptr); // publishers may hold the gate longer
  if (up_) {
    up_ = false;
    publish_event(false, errc::none, "the link was stopped");
  }
  leave_bus();
  shm_.drop();
  sock_.stop();
  std::lock_guard<std::mutex> guard{sh_->mtx};
  // Unsubscribed above; a publisher still on an older routing snapshot
  // may count on the gate for a moment after this (the topic counts it too).
  sh_->retire_locked(gate_);
  sh_->peers.erase(self_->id());
  sh_->brokers.erase(self_->id());
  sh_->recompute_state_locked();
  sh_->cv.notify_all();
}

void connection::say_goodbye() {
  if (!established_)
    return;
  proto_.write_goodbye(sock_.new_batch());
  sock_.send(false);
  sock_.write_held(); // the broker quits before the loop's turn ends
}

void connection::leave_bus() {
  for (auto& kv : subs_)
    sh_->bus->unsubscribe(kv.second);
  subs_.clear();
  routes_.reset();
  if (watch_id_ != 0) {
    sh_->bus->unwatch(watch_id_);
    watch_id_ = 0;
  }
  sock_.drop_pending();
}

void connection::mark_up() {
  up_ = true;
  if (reconnector_ != nullptr)
    reconnector_->on_up();
  gate_->rearm();
  sh_->connects.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> guard{sh_->mtx};
    publish_peer_interest_locked();
    sh_->peer = proto_.peer_name();
    sh_->recompute_state_locked();
    sh_->cv.notify_all();
  }
  log(log_level::info, sh_->who(), "established with " + proto_.peer_name());
  publish_event(true, errc::none, {});
}

void connection::publish_event(bool up, errc reason, const std::string& text) {
  link_event ev{sh_->cfg.name, to_string(sh_->cfg.kind), proto_.peer_name(),
                up, static_cast<uint8_t>(reason), text};
  send_gate::no_block_scope no_block; // on the I/O loop
  sh_->bus->publish(std::move(ev));
}

void connection::publish_peer_interest_locked() {
  auto& v = sh_->peers[self_->id()];
  v.node = proto_.peer().node;
  v.interest.clear();
  for (auto& kv : subs_)
    v.interest.push_back(kv.first);
}

// -- broker events -------------------------------------------------------------------

void connection::on_bytes(const std::vector<char>& buf) {
  last_rx_ = steady_clock::now();
  close_if_ended(sock_.read_from_scribe(buf, proto_, *this));
}

void connection::on_polled_bytes(const char* data, size_t size) {
  last_rx_ = steady_clock::now();
  bool ok = sock_.read(data, size, proto_, *this);
  if (ok && fault_ == errc::none)
    return;
  polled_end_ = !ok;
  polled_close_pending_ = true;
  // A broker quits only from its own message handling: close from there.
  // No more polled reads meanwhile (the protocol has ended).
  sock_.stop_polling();
  post_to_self(self_, polled_close_atom::value, epoch_);
}

void connection::on_polled_close(uint64_t epoch) {
  if (epoch == epoch_ && polled_close_pending_) {
    polled_close_pending_ = false;
    close_if_ended(!polled_end_);
  }
}

void connection::on_stream_closed() {
  // The poller may have read what ended the protocol (a refusal, a goodbye,
  // a bad frame) before the scribe saw the end of the stream: that reason,
  // not the bare end, is what the link reports.
  on_polled_close(epoch_);
  if (connected())
    close(errc::peer_lost, "the peer closed the connection");
}

void connection::close_if_ended(bool ok) {
  if (!ok && connected())
    close(close_reason_, close_text_);
  else if (fault_ != errc::none && connected()) {
    log(log_level::error, sh_->who(), fault_text_ + "; resetting the connection");
    close(fault_, fault_text_);
  }
}

void connection::on_tick(uint64_t epoch) {
  if (epoch != epoch_ || !connected())
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
  if (auto gone = shm_.check_peer(); !gone.empty()) {
    close(errc::peer_lost, gone);
    return;
  }
  // Over shared memory the data does not cross the socket: a peer that
  // moves its rings is alive even if its socket heartbeats are late.
  if (shm_.peer_progressed())
    last_rx_ = now;
  if (now - last_rx_ > cfg.peer_timeout) {
    auto silent = duration_cast<milliseconds>(now - last_rx_).count();
    close(errc::peer_lost,
          "no frame from " + proto_.peer_name()
            + (shm_.attached() ? " and no progress in the shared-memory rings" : "")
            + " for " + std::to_string(silent) + " ms (peer_timeout "
            + std::to_string(cfg.peer_timeout.count())
            + " ms): the peer crashed, hangs or the network is down");
    return;
  }
  shm_.retry_interest();
  if (established_ && now - sock_.last_tx() >= cfg.heartbeat_interval) {
    proto_.write_heartbeat(sock_.new_batch());
    sock_.send(false);
  }
  schedule_tick();
}

void connection::on_ring_fault(uint64_t epoch, errc code, const std::string& text) {
  if (!connected() || epoch != epoch_)
    return; // about an earlier connection
  log(log_level::error, sh_->who(), text + "; resetting the connection");
  close(code, text);
}

void connection::on_overflow() {
  if (!established_)
    return;
  auto text = "peer " + proto_.peer_name() + " is too slow: "
              + std::to_string(gate_->capacity())
              + " messages queued; disconnecting it (overflow policy "
                "disconnect)";
  log(log_level::warning, sh_->who(), text);
  close(errc::link_overflow, text);
}

void connection::on_bus_message(const caf::message& msg) {
  if (!established_) {
    sh_->dropped_link_down.fetch_add(1, std::memory_order_relaxed);
    gate_->release();
    return;
  }
  auto e = proto_.write_data(msg, sock_.new_batch());
  if (e != errc::unknown_type)
    if (auto i = subs_.find(proto_.last_type_id()); i != subs_.end())
      mycelium::detail::bump(i->second->delivered); // counted as handled
  if (e != errc::none) {
    count_unsent(e);
    return;
  }
  sh_->frames_sent.fetch_add(1, std::memory_order_relaxed);
  sock_.send(true);
}

void connection::write(uint32_t type_id, const void* value) noexcept {
  // The bus counts it delivered (offer_result::delivered).
  if (!established_ || !sock_.is_open()) { // a publisher's older routing snapshot
    sh_->dropped_link_down.fetch_add(1, std::memory_order_relaxed);
    gate_->release();
    return;
  }
  // An interest change this thread made is still in the mailbox: it goes
  // first, so the peer knows we listen before it sees what follows.
  if (interest_dirty_->load(std::memory_order_acquire))
    advertise_interest();
  try {
    if (auto e = sock_.write_value(proto_, type_id, value); e != errc::none) {
      count_unsent(e);
      return;
    }
  } catch (...) { // out of memory while encoding: counted as unencodable
    count_unsent(errc::unknown_type);
    return;
  }
  sh_->frames_sent.fetch_add(1, std::memory_order_relaxed);
}

void connection::count_unsent(errc e) {
  gate_->release();
  if (e != errc::frame_too_large) {
    sh_->bad_frames.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto* t = sh_->schema.find(proto_.last_type_id());
  auto text = "a '" + (t ? t->name : std::string{"?"}) + "' message of "
              + std::to_string(proto_.last_payload_size())
              + " payload bytes is larger than max_payload "
              + std::to_string(sh_->cfg.max_payload)
              + ": not sent (raise max_payload on both sides)";
  // The text first: whoever sees the counter move finds it set.
  sh_->set_error(text);
  if (sh_->frames_too_large.fetch_add(1, std::memory_order_relaxed) == 0)
    log(log_level::error, sh_->who(), text);
}

void connection::advertise_interest() {
  if (!established_)
    return;
  if (is_shm()) {
    shm_.advertise_interest();
    return;
  }
  interest_dirty_->store(false, std::memory_order_relaxed); // before reading the bus
  auto want = sh_->bus->interest(self_->ctrl(), !sh_->cfg.relay);
  std::set<uint32_t> now(want.begin(), want.end());
  auto& out = sock_.new_batch();
  for (auto id : now)
    if (advertised_.count(id) == 0 && sh_->schema.find(id) != nullptr)
      proto_.write_interest(id, true, out);
  for (auto id : advertised_)
    if (now.count(id) == 0)
      proto_.write_interest(id, false, out);
  advertised_.swap(now);
  sock_.send(false);
}

// -- link_listener -------------------------------------------------------------------

void connection::on_established(const wire::hello&) {
  established_ = true;
  if (!is_shm())
    mark_up();
  if (is_shm() && !connecting()) {
    // The listening side creates the segment and names it before anything
    // else, so the peer can map it before interest arrives.
    std::string why;
    if (auto e = shm_.create(*this, epoch_, why); e != errc::none) {
      fault(e, std::move(why));
      return;
    }
    proto_.write_shm_attach(shm_.offer(), sock_.batch());
  }
  if (watch_id_ == 0) {
    // Runs on the thread that (un)subscribed, before it can publish again.
    // Over shm that thread writes the change into the ring itself, in order
    // with what it publishes next. Over a socket the broker writes it; a
    // loop-placed publisher that writes directly (see `write`) first
    // advertises what `interest_dirty_` says is pending.
    watch_id_ = sh_->bus->watch([weak = caf::weak_actor_ptr{self_->ctrl()},
                                 exclude = self_->ctrl(), ch = shm_.current(),
                                 dirty = interest_dirty_] {
      if (auto c = ch->get()) {
        c->sync_interest(exclude); // written: the broker has nothing to add
        return;
      }
      dirty->store(true, std::memory_order_release);
      post_if_alive(weak, interest_atom::value);
    });
  }
  if (is_shm()) {
    shm_.advertise_interest();
    return;
  }
  // Our interest goes out right after the hello-driven bytes.
  auto want = sh_->bus->interest(self_->ctrl(), !sh_->cfg.relay);
  for (auto id : want)
    if (sh_->schema.find(id) != nullptr && advertised_.insert(id).second)
      proto_.write_interest(id, true, sock_.batch());
}

void connection::on_refusing(const wire::refuse& why) {
  sh_->refusals_sent.fetch_add(1, std::memory_order_relaxed);
  log_refusal(std::string{"refusing peer ("} + to_string(why.reason) + "): " + why.text);
  close_reason_ = why.reason;
  close_text_ = "refused the peer: " + why.text;
}

void connection::on_refused(const wire::refuse& why) {
  sh_->refusals_received.fetch_add(1, std::memory_order_relaxed);
  log_refusal(std::string{"refused by peer ("} + to_string(why.reason) + "): "
              + why.text);
  close_reason_ = why.reason;
  close_text_ = "refused by the peer: " + why.text;
}

void connection::on_interest(uint32_t type_id, bool add) {
  auto* t = sh_->schema.find(type_id);
  if (add) {
    if (is_shm() && !shm_.attached()) {
      fault(errc::protocol_violation,
            "peer " + proto_.peer_name()
              + " subscribed before the shared-memory segment was attached");
      return;
    }
    if (subs_.count(type_id) == 0) {
      std::shared_ptr<port> p = shm_.attached() ? std::shared_ptr<port>{shm_.channel()}
                                                : std::shared_ptr<port>{gate_};
      subs_.emplace(type_id, sh_->bus->subscribe_link(
                               type_id, t->name, caf::strong_actor_ptr{self_->ctrl()},
                               std::move(p), "link:" + sh_->cfg.name));
    }
  } else if (auto i = subs_.find(type_id); i != subs_.end()) {
    sh_->bus->unsubscribe(i->second);
    subs_.erase(i);
  }
  if (!up_)
    return; // published by mark_up
  std::lock_guard<std::mutex> guard{sh_->mtx};
  publish_peer_interest_locked();
  sh_->cv.notify_all();
}

void connection::on_data(uint32_t type_id, caf::message msg) {
  mycelium::payload_ref p;
  p.type_id = type_id;
  p.value = const_cast<void*>(msg.at(0));
  p.boxed = std::move(msg);
  deliver(p);
}

void connection::on_value(uint32_t type_id, void* value,
                          caf::message (*box)(uint32_t, void*)) {
  mycelium::payload_ref p{type_id, value, box, {}};
  deliver(p);
}

void connection::deliver(mycelium::payload_ref& p) {
  mycelium::detail::bump(sh_->frames_received); // loop thread only
  if (type_name_id_ != p.type_id || type_name_ == nullptr) {
    type_name_ = sh_->schema.find(p.type_id)->name.c_str();
    type_name_id_ = p.type_id;
  }
  // Forwarding runs on the I/O loop: never wait for another link's queue.
  send_gate::no_block_scope no_block;
  sh_->bus->deliver_to(routes_.route(p.type_id), type_name_, p, self_->ctrl(),
                       self_->context(), sh_->cfg.relay);
}

void connection::on_bad_frame(errc code, const std::string& text) {
  (void) code;
  sh_->set_error(text); // before the counter, see on_bus_message
  if (sh_->bad_frames.fetch_add(1, std::memory_order_relaxed) == 0)
    log(log_level::error, sh_->who(), text + " (dropped; further ones only counted)");
}

void connection::on_goodbye() {
  sh_->goodbyes.fetch_add(1, std::memory_order_relaxed);
  log(log_level::info, sh_->who(), proto_.peer_name() + " closed the link (goodbye)");
  close_reason_ = errc::none;
  close_text_ = "the peer closed the link (goodbye)";
}

errc connection::on_shm_attach(const wire::shm_attach& x, std::string& why) {
  if (!is_shm())
    return link_listener::on_shm_attach(x, why);
  if (!connecting()) { // the peer's answer: it mapped our segment
    if (auto e = shm_.on_answer(x, proto_.peer_name(), why); e != errc::none)
      return e;
    mark_up();
    return errc::none;
  }
  if (auto e = shm_.attach(x, proto_.peer_name(), *this, epoch_, why);
      e != errc::none)
    return e;
  proto_.write_shm_attach(shm_.offer(), sock_.batch());
  // Interest first: once the link is up, other threads may write data into
  // the ring, and the peer must see our interest before it (a reply to
  // something we send would otherwise be dropped as unwanted).
  shm_.advertise_interest();
  mark_up();
  return errc::none;
}

void connection::on_error(errc code, const std::string& text) {
  log(log_level::error, sh_->who(), text + "; resetting the connection");
  close_reason_ = code;
  close_text_ = text;
}

// -- helpers -------------------------------------------------------------------------

void connection::fault(errc code, std::string text) {
  if (fault_ == errc::none) {
    fault_ = code;
    fault_text_ = std::move(text);
  }
}

void connection::log_refusal(const std::string& text) {
  if (text == last_refusal_)
    return;
  last_refusal_ = text;
  log(log_level::error, sh_->who(), text);
}

milliseconds connection::tick_period() const {
  auto period = std::min(sh_->cfg.heartbeat_interval, sh_->cfg.peer_timeout / 4);
  return period.count() <= 0 ? milliseconds{1} : period;
}

void connection::schedule_tick() {
  post_to_self_later(self_, tick_period(), tick_atom::value, epoch_);
}

// -- the broker behavior -------------------------------------------------------------

caf::behavior connection_behavior(caf::io::broker* self,
                                  std::shared_ptr<connection> c,
                                  caf::message_handler more) {
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
  caf::message_handler own{
    [c](caf::io::new_data_msg& m) { c->on_bytes(m.buf); },
    [c](const caf::io::data_transferred_msg& m) { c->on_transferred(m.written); },
    [c](const caf::io::connection_closed_msg&) { c->on_stream_closed(); },
    [c](tick_atom, uint64_t epoch) { c->on_tick(epoch); },
    [c](polled_close_atom, uint64_t epoch) { c->on_polled_close(epoch); },
    [c](interest_atom) { c->advertise_interest(); },
    [c](overflow_atom) { c->on_overflow(); },
    [c](ring_fault_atom, uint64_t epoch, uint8_t code, const std::string& text) {
      c->on_ring_fault(epoch, static_cast<errc>(code), text);
    },
  };
  return more ? own.or_else(more) : own;
}

} // namespace mycelium::transports::detail
