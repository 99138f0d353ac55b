// The listening side of a link (see acceptor.hpp): the acceptor broker and
// the connection brokers it forks, one per accepted peer.

#include "acceptor.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <unistd.h>

#include "connection.hpp"
#include "mycelium/actors/log.hpp"

namespace mycelium::transports::detail {

namespace {

/// An accepted peer's broker: its connection starts with the handshake at
/// once and the broker quits when it closes (no reconnector).
caf::behavior accepted_fn(caf::io::broker* self, caf::io::connection_handle hdl,
                          std::shared_ptr<link_shared> sh) {
  auto c = std::make_shared<connection>(self, sh, nullptr);
  c->on_connected(hdl);
  return connection_behavior(self, c);
}

/// Holds the listening socket `fd`; removes a Unix socket file when it exits.
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
      log(log_level::warning, sh->who(), "listening socket closed");
    },
  };
}

} // namespace

caf::actor spawn_acceptor(caf::actor_system& sys, int fd,
                          std::shared_ptr<link_shared> sh) {
  return sys.middleman().spawn_broker(acceptor_fn, fd, std::move(sh));
}

} // namespace mycelium::transports::detail
