#include "doorbell.hpp"

#include <atomic>
#include <cerrno>
#include <algorithm>
#include <cstddef>
#include <cstring>

#include <unistd.h>

namespace mycelium::transports::detail {

socklen_t abstract_address(const std::string& name, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  auto n = std::min(name.size(), sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n); // sun_path[0] = 0: abstract
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

doorbell_receiver::doorbell_receiver(caf::io::network::default_multiplexer& mpx,
                                     int fd, std::string name)
  : event_handler(mpx, fd), name_(std::move(name)) {
}

std::unique_ptr<doorbell_receiver>
doorbell_receiver::make(caf::io::network::default_multiplexer& mpx) {
  static std::atomic<uint32_t> counter{0};
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return nullptr;
    auto name = "mycelium-bell-" + std::to_string(::getpid()) + "-"
                + std::to_string(counter.fetch_add(1));
    sockaddr_un addr;
    auto len = abstract_address(name, addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0)
      return std::make_unique<doorbell_receiver>(mpx, fd, std::move(name));
    ::close(fd); // EADDRINUSE: a process with a recycled pid; try the next
  }
  return nullptr;
}

void doorbell_receiver::handle_event(caf::io::network::operation op) {
  if (op != caf::io::network::operation::read)
    return;
  char buf[64];
  while (::recv(fd(), buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    // drain: the datagrams only woke the loop
  }
}

void doorbell_receiver::removed_from_loop(caf::io::network::operation) {
  // nop: the multiplexer owns this object and re-activates it when needed
}

void doorbell_receiver::graceful_shutdown() {
  passivate();
}

doorbell_sender::~doorbell_sender() {
  if (fd_ >= 0)
    ::close(fd_);
}

bool doorbell_sender::open(const std::string& name) {
  if (fd_ < 0) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      return false;
  }
  addr_len_ = abstract_address(name, addr_);
  return true;
}

void doorbell_sender::ring() const noexcept {
  if (fd_ < 0)
    return;
  char b = 1;
  // EAGAIN: the doorbell is full, a wake-up is pending anyway; ECONNREFUSED:
  // the peer is gone, which its link notices by other means.
  (void) ::sendto(fd_, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
}

} // namespace mycelium::transports::detail
