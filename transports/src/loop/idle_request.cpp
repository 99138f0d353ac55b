#include "mycelium/transports/loop/idle_request.hpp"

#include "mycelium/errc.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "mycelium/transports/loop/poller.hpp"

namespace mycelium::transports {

/// Touched on the loop's thread only (the posted functions).
struct idle_request::state {
  loop_registration reg;
};

idle_request& idle_request::operator=(idle_request&& other) noexcept {
  if (this != &other) {
    reset();
    loop_ = other.loop_;
    state_ = std::move(other.state_);
  }
  return *this;
}

idle_request::~idle_request() {
  reset();
}

caf::expected<idle_request> idle_request::make(caf::actor_system& sys, idle_strategy idle) {
  auto* loop = io_loop::of(sys);
  if (loop == nullptr)
    return make_error(errc::config_invalid,
                      "an idle request needs the node's I/O loop: call "
                      "mycelium::transports::load_io_loop(cfg) before the actor "
                      "system is made");
  idle_request out;
  out.loop_ = loop;
  out.state_ = std::make_shared<state>();
  loop->post([loop, st = out.state_, idle] { st->reg = loop->request_idle(idle, false); });
  return out;
}

void idle_request::reset() {
  if (state_ == nullptr)
    return;
  // The registration ends on the loop's thread, after the request was made
  // (posts run in order).
  loop_->post([st = std::move(state_)] { st->reg.reset(); });
  loop_ = nullptr;
}

} // namespace mycelium::transports
