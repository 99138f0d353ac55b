// The connecting side of a link (see connector.hpp): the connector broker,
// its connect attempts (a detached actor for TCP) and the reconnect backoff.

#include "connector.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <unistd.h>

#include "connection.hpp"
#include "link_messages.hpp"
#include "mycelium/actors/log.hpp"
#include "socket_ops.hpp"

namespace mycelium::transports::detail {

using namespace std::chrono;

namespace {

/// The connector broker's state: its current connection and the backoff
/// between attempts (from `reconnect_min`, doubled per failure up to
/// `reconnect_max`, times 1 to 1.5 of jitter; back to the minimum once the
/// link is up).
///
/// Thread-safety: lives inside its broker's behavior; touched only by that
/// broker (the TCP connect runs in a detached actor that only sends it a
/// message).
class connector final : public reconnector {
public:
  connector(caf::io::broker* self, std::shared_ptr<link_shared> sh);

  connection& conn() noexcept { return conn_; }

  /// Connects unless connected or stopping: Unix sockets at once, TCP in a
  /// short-lived detached actor (`connected_atom` or `connect_failed_atom`).
  void try_connect();

  /// The detached TCP connect succeeded with `fd`.
  void on_connect_result(int fd);

  /// An attempt failed: counted, logged once per distinct error, retried.
  void connect_failed(const std::string& text);

  // -- reconnector -------------------------------------------------------------------

  void on_up() override;
  void on_lost() override { schedule_reconnect(); }

private:
  void schedule_reconnect();

  caf::io::broker* self_;
  std::shared_ptr<link_shared> sh_;
  milliseconds backoff_;
  std::minstd_rand rng_;
  std::string last_connect_error_;
  /// Connect failures before the first connection are expected while the
  /// peer starts; they are logged as info for this long.
  static constexpr std::chrono::milliseconds startup_grace{2000};
  std::chrono::steady_clock::time_point first_failure_{};
  bool ever_up_ = false;
  bool warned_ = false;
  connection conn_; ///< last: it points back at this reconnector
};

connector::connector(caf::io::broker* self, std::shared_ptr<link_shared> sh)
  : self_(self), sh_(std::move(sh)), backoff_(sh_->cfg.reconnect_min),
    rng_(static_cast<uint32_t>(std::random_device{}())),
    conn_(self, sh_, this) {
  // nop
}

void connector::try_connect() {
  if (conn_.connected() || sh_->is_stopping())
    return;
  auto& cfg = sh_->cfg;
  if (cfg.kind != link_kind::tcp) {
    auto fd = connect_unix(cfg.address); // local: never blocks
    if (fd)
      conn_.on_connected(self_->add_scribe(*fd));
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

void connector::on_connect_result(int fd) {
  if (conn_.connected() || sh_->is_stopping()) {
    ::close(fd);
    return;
  }
  conn_.on_connected(self_->add_scribe(fd));
}

void connector::connect_failed(const std::string& text) {
  sh_->connect_failures.fetch_add(1, std::memory_order_relaxed);
  // Once per distinct error, not per try. A peer that has never been
  // reached may just be starting (any start order works): say so quietly
  // for a grace period, and warn once when it lasts longer.
  auto now = std::chrono::steady_clock::now();
  if (!ever_up_ && first_failure_ == std::chrono::steady_clock::time_point{})
    first_failure_ = now;
  bool starting = !ever_up_ && now - first_failure_ < startup_grace;
  if (text != last_connect_error_) {
    last_connect_error_ = text;
    log(starting ? log_level::info : log_level::warning, sh_->who(),
        text + (starting ? "; the peer may still be starting, retrying"
                         : "; retrying with backoff"));
    warned_ = !starting;
  } else if (!starting && !warned_) {
    warned_ = true;
    log(log_level::warning, sh_->who(),
        text + "; still failing after "
          + std::to_string(startup_grace.count() / 1000) + " s, retrying with backoff");
  }
  {
    std::lock_guard<std::mutex> guard{sh_->mtx};
    sh_->last_error = text;
    sh_->recompute_state_locked(); // "starting" becomes "down"
    sh_->cv.notify_all();
  }
  schedule_reconnect();
}

void connector::on_up() {
  backoff_ = sh_->cfg.reconnect_min;
  last_connect_error_.clear();
  ever_up_ = true;
  warned_ = false;
}

void connector::schedule_reconnect() {
  std::uniform_real_distribution<double> jitter{1.0, 1.5};
  auto delay = duration_cast<milliseconds>(backoff_ * jitter(rng_));
  backoff_ = std::min(backoff_ * 2, sh_->cfg.reconnect_max);
  post_to_self_later(self_, delay, connect_atom::value);
}

caf::behavior connector_fn(caf::io::broker* self, std::shared_ptr<link_shared> sh) {
  auto r = std::make_shared<connector>(self, std::move(sh));
  post_to_self(self, connect_atom::value);
  // The connection lives inside the connector (aliasing: one lifetime).
  std::shared_ptr<connection> c{r, &r->conn()};
  return connection_behavior(
    self, std::move(c),
    caf::message_handler{
      [r](connect_atom) { r->try_connect(); },
      [r](connected_atom, int fd) { r->on_connect_result(fd); },
      [r](connect_failed_atom, const std::string& text) { r->connect_failed(text); },
    });
}

} // namespace

caf::actor spawn_connector(caf::actor_system& sys,
                           std::shared_ptr<link_shared> sh) {
  return sys.middleman().spawn_broker(connector_fn, std::move(sh));
}

} // namespace mycelium::transports::detail
