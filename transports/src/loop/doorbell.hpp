#pragma once

#include <string>

#include <sys/socket.h>
#include <sys/un.h>

#include <caf/io/network/event_handler.hpp>

namespace mycelium::transports::detail {

/// The receiving end of a doorbell: an abstract-namespace Unix datagram
/// socket (no file, gone with the process) in the multiplexer's epoll set.
/// A datagram only wakes the loop; its content is ignored and drained.
///
/// Thread-safety: I/O thread only.
class doorbell_receiver final : public caf::io::network::event_handler {
public:
  /// Binds a fresh socket named `name` (without the leading NUL).
  doorbell_receiver(caf::io::network::default_multiplexer& mpx, int fd,
                    std::string name);

  /// Creates the socket for `mpx` with a name unique in this machine.
  static std::unique_ptr<doorbell_receiver>
  make(caf::io::network::default_multiplexer& mpx);

  const std::string& name() const noexcept { return name_; }

  void start() { activate(); }
  void stop() { passivate(); }

  void handle_event(caf::io::network::operation op) override;
  void removed_from_loop(caf::io::network::operation op) override;
  void graceful_shutdown() override;

private:
  std::string name_;
};

/// The ringing end: sends one datagram to a named doorbell. `ring` never
/// blocks; a full doorbell already has a wake-up pending, so EAGAIN is fine.
///
/// Thread-safety: `ring` may run on any thread (one sendto).
class doorbell_sender {
public:
  doorbell_sender() = default;
  ~doorbell_sender();
  doorbell_sender(const doorbell_sender&) = delete;
  doorbell_sender& operator=(const doorbell_sender&) = delete;

  /// Targets the doorbell `name`; false (with errno) if no socket could be made.
  bool open(const std::string& name);

  bool is_open() const noexcept { return fd_ >= 0; }

  void ring() const noexcept;

private:
  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
};

/// Fills `addr` with the abstract address `name`; returns its length.
socklen_t abstract_address(const std::string& name, sockaddr_un& addr);

} // namespace mycelium::transports::detail
