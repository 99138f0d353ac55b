#include "mycelium/topology/control_channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace mycelium::topology {

control_channel::control_channel(int fd) : fd_(fd) {
  if (fd_ >= 0) {
    int flags = ::fcntl(fd_, F_GETFL);
    ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
    ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
  }
}

control_channel::~control_channel() {
  close();
}

control_channel::control_channel(control_channel&& other) noexcept
  : fd_(std::exchange(other.fd_, -1)), partial_(std::move(other.partial_)) {
}

control_channel& control_channel::operator=(control_channel&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    partial_ = std::move(other.partial_);
  }
  return *this;
}

void control_channel::close() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

bool control_channel::send(const std::string& line) {
  if (fd_ < 0)
    return false;
  std::string buf;
  buf.reserve(line.size() + 1);
  for (char c : line) {
    if (c == '\n')
      buf += " | ";
    else if (c != '\r')
      buf += c;
  }
  buf += '\n';
  size_t off = 0;
  while (off < buf.size()) {
    auto n = ::send(fd_, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The socket buffer is full (a status line of a large node): wait
      // until it drains rather than dropping part of a line.
      pollfd w{fd_, POLLOUT, 0};
      if (::poll(&w, 1, 1000) <= 0)
        return false;
      continue;
    }
    return false;
  }
  return true;
}

bool read_lines(int fd, std::string& partial, std::vector<std::string>& lines) {
  bool closed = false;
  char buf[8192];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      partial.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      closed = true;
      break;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      closed = true;
    break;
  }
  size_t start = 0;
  for (auto nl = partial.find('\n'); nl != std::string::npos;
       nl = partial.find('\n', start)) {
    lines.push_back(partial.substr(start, nl - start));
    start = nl + 1;
  }
  partial.erase(0, start);
  return closed;
}

std::vector<std::string> control_channel::receive(bool& closed) {
  std::vector<std::string> out;
  if (fd_ < 0) {
    closed = true;
    return out;
  }
  closed = read_lines(fd_, partial_, out);
  return out;
}

std::pair<std::string, std::string> split_verb(const std::string& line) {
  auto sp = line.find(' ');
  if (sp == std::string::npos)
    return {line, {}};
  return {line.substr(0, sp), line.substr(sp + 1)};
}

} // namespace mycelium::topology
