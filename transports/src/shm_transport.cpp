// The shared-memory data path of a link connection: segment offer and
// attach, interest in the ring, ring faults (see shm_transport.hpp).

#include "shm_transport.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "link_messages.hpp"

namespace mycelium::transports::detail {

shm_transport::shm_transport(caf::io::broker* self,
                             std::shared_ptr<link_shared> sh)
  : self_(self), sh_(std::move(sh)) {
  // nop
}

errc shm_transport::create(link_listener& l, uint64_t epoch, std::string& why) {
  auto ep = shm::detail::shm_endpoint::create(*loop(), sh_,
                                              endpoint_callbacks(l, epoch));
  if (!ep) {
    why = "cannot create the shared-memory segment: " + render(ep.error());
    return static_cast<errc>(ep.error().code());
  }
  adopt(std::move(*ep));
  return errc::none;
}

errc shm_transport::attach(const wire::shm_attach& x, const std::string& peer,
                           link_listener& l, uint64_t epoch, std::string& why) {
  if (ep_) {
    why = "peer " + peer + " offered a second segment";
    return errc::protocol_violation;
  }
  auto ep = shm::detail::shm_endpoint::attach(*loop(), sh_, x.segment,
                                              endpoint_callbacks(l, epoch));
  if (!ep) {
    why = "cannot attach the peer's shared-memory segment: " + render(ep.error());
    return static_cast<errc>(ep.error().code());
  }
  adopt(std::move(*ep));
  ep_->peer_attached(x.doorbell);
  return errc::none;
}

errc shm_transport::on_answer(const wire::shm_attach& x, const std::string& peer,
                              std::string& why) {
  if (!ep_ || x.segment != ep_->offer().segment) {
    why = "peer " + peer + " answered with segment '" + x.segment
          + "', which is not the one offered";
    return errc::protocol_violation;
  }
  ep_->peer_attached(x.doorbell);
  return errc::none;
}

void shm_transport::advertise_interest() {
  if (ep_) // the connecting side advertises once it attached
    ep_->channel()->sync_interest(self_->ctrl());
}

void shm_transport::retry_interest() {
  if (ep_)
    ep_->channel()->flush_interest();
}

void shm_transport::current_channel::set(
  const std::shared_ptr<shm::detail::shm_channel>& ch) {
  std::lock_guard<std::mutex> guard{mtx_};
  ch_ = ch;
}

std::shared_ptr<shm::detail::shm_channel> shm_transport::current_channel::get() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return ch_.lock();
}

std::string shm_transport::check_peer() {
  return ep_ ? ep_->check_peer() : std::string{};
}

void shm_transport::finish() {
  if (ep_)
    ep_->finish(); // frames the peer wrote before it left still count
}

void shm_transport::drop() {
  current_->set(nullptr);
  ep_.reset(); // its channel's interest state goes with it
}

void shm_transport::adopt(std::unique_ptr<shm::detail::shm_endpoint> ep) {
  ep_ = std::move(ep);
  ep_->start();
  current_->set(ep_->channel());
  std::lock_guard<std::mutex> guard{sh_->mtx};
  sh_->channels[ep_->channel().get()] = ep_->channel();
}

shm::detail::shm_endpoint::callbacks
shm_transport::endpoint_callbacks(link_listener& l, uint64_t epoch) {
  // Ring faults and publisher-side trouble come from outside the broker's
  // handlers, so they only post a message (anonymous, see self_handle).
  shm::detail::shm_endpoint::callbacks cbs;
  cbs.listener = &l;
  caf::weak_actor_ptr weak{self_->ctrl()};
  cbs.on_fault = [weak, epoch](errc code, const std::string& text) {
    post_if_alive(weak, ring_fault_atom::value, epoch,
                  static_cast<uint8_t>(code), text);
  };
  cbs.on_trouble = [weak, epoch](errc code) {
    if (code == errc::link_overflow)
      post_if_alive(weak, overflow_atom::value);
    else
      post_if_alive(weak, ring_fault_atom::value, epoch,
                    static_cast<uint8_t>(code),
                    std::string{"a publisher found the outgoing ring corrupt"});
  };
  return cbs;
}

io_loop* shm_transport::loop() const {
  return io_loop::of(self_->system()); // checked by link::start for shm
}

} // namespace mycelium::transports::detail
