#include "socket_ops.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mycelium/errc.hpp"

namespace mycelium::transports::detail {

namespace {

/// "strerror(errno)" of the calling thread's last error.
std::string last_error_text() {
  return std::strerror(errno);
}

caf::error io_error(const std::string& what) {
  return make_error(errc::io_failed, what + ": " + last_error_text());
}

bool make_unix_addr(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

caf::error bad_path(const std::string& path) {
  return make_error(errc::config_invalid,
                    "unix socket path '" + path + "' is empty or longer than "
                      + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1)
                      + " bytes");
}

} // namespace

caf::expected<int> connect_unix(const std::string& path) {
  sockaddr_un addr;
  if (!make_unix_addr(path, addr))
    return bad_path(path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return io_error("socket(AF_UNIX)");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    auto err = io_error("connect to unix:" + path);
    ::close(fd);
    return err;
  }
  return fd;
}

caf::expected<int> listen_unix(const std::string& path) {
  sockaddr_un addr;
  if (!make_unix_addr(path, addr))
    return bad_path(path);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error(errc::address_in_use,
                        "'" + path + "' exists and is not a socket; remove it "
                        "or choose another path");
    // Is anybody accepting on it?
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
      return io_error("socket(AF_UNIX)");
    int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    int err = errno;
    ::close(probe);
    if (rc == 0)
      return make_error(errc::address_in_use,
                        "unix:" + path + " is served by a live process; "
                        "stop it or choose another path");
    if (err != ECONNREFUSED)
      return make_error(errc::io_failed, "probing stale socket unix:" + path
                                           + ": " + std::strerror(err));
    if (::unlink(path.c_str()) != 0) // stale: its owner died
      return io_error("removing stale socket file " + path);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return io_error("socket(AF_UNIX)");
  // Linux takes the file mode from the socket inode at bind time: set it
  // first so the file never exists with wider permissions.
  ::fchmod(fd, S_IRUSR | S_IWUSR);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    auto e = io_error("bind unix:" + path);
    ::close(fd);
    return e;
  }
  ::chmod(path.c_str(), S_IRUSR | S_IWUSR);
  if (::listen(fd, SOMAXCONN) != 0) {
    auto e = io_error("listen unix:" + path);
    ::close(fd);
    ::unlink(path.c_str());
    return e;
  }
  return fd;
}

namespace {

caf::expected<addrinfo*> resolve(const std::string& host, uint16_t port,
                                 bool passive) {
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive)
    hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  auto port_str = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port_str.c_str(),
                         &hints, &res);
  if (rc != 0 || res == nullptr)
    return make_error(errc::io_failed, "cannot resolve '" + host
                                         + "': " + ::gai_strerror(rc));
  return res;
}

} // namespace

caf::expected<std::pair<int, uint16_t>> listen_tcp(const std::string& host,
                                                   uint16_t port) {
  auto res = resolve(host, port, true);
  if (!res)
    return res.error();
  caf::error last = make_error(errc::io_failed, "no address for " + host);
  for (auto* ai = *res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0) {
      last = io_error("socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0
        || ::listen(fd, SOMAXCONN) != 0) {
      last = io_error("listen on tcp:" + host + ":" + std::to_string(port));
      ::close(fd);
      continue;
    }
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    uint16_t bound = ss.ss_family == AF_INET6
                       ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    ::freeaddrinfo(*res);
    return std::make_pair(fd, bound);
  }
  ::freeaddrinfo(*res);
  return last;
}

caf::expected<int> connect_tcp(const std::string& host, uint16_t port,
                               std::chrono::milliseconds timeout) {
  auto res = resolve(host, port, false);
  if (!res)
    return res.error();
  auto where = "tcp:" + host + ":" + std::to_string(port);
  caf::error last = make_error(errc::io_failed, "no address for " + where);
  for (auto* ai = *res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      ai->ai_protocol);
    if (fd < 0) {
      last = io_error("socket");
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
      if (rc == 0) {
        errno = ETIMEDOUT;
        rc = -1;
      } else if (rc > 0) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        errno = err;
        rc = err == 0 ? 0 : -1;
      }
    }
    if (rc != 0) {
      last = io_error("connect to " + where);
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    ::freeaddrinfo(*res);
    return fd;
  }
  ::freeaddrinfo(*res);
  return last;
}

} // namespace mycelium::transports::detail
