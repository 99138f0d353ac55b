#pragma once

#include <string>
#include <vector>

namespace mycelium::topology {

/// One end of the line-based channel between `mycelium-run` and a node it
/// started (a Unix socket pair; the node gets its end as `--control-fd`).
/// Each message is one line, "verb [argument]" (docs/topology.md lists the
/// verbs). The peer closing its end means it is gone: a node stops, the
/// launcher reaps.
///
/// Thread-safety: `send` may be called from any thread (one write per line);
/// `receive` belongs to one thread.
class control_channel {
public:
  control_channel() = default;
  /// Takes ownership of `fd` and makes it non-blocking for reads.
  explicit control_channel(int fd);
  ~control_channel();
  control_channel(control_channel&& other) noexcept;
  control_channel& operator=(control_channel&& other) noexcept;
  control_channel(const control_channel&) = delete;
  control_channel& operator=(const control_channel&) = delete;

  int fd() const noexcept { return fd_; }
  bool open() const noexcept { return fd_ >= 0; }

  /// Sends `line` (a newline is added); false once the peer is gone. A
  /// line break inside `line` (a traceback in a failure text) becomes " | ",
  /// so that the message stays one line of the protocol.
  bool send(const std::string& line);

  /// Reads what is available without blocking and returns the complete
  /// lines; sets `closed` when the peer closed its end.
  std::vector<std::string> receive(bool& closed);

  void close();

private:
  int fd_ = -1;
  std::string partial_;
};

/// Reads what non-blocking `fd` has, appends it to `partial`, moves the
/// complete lines (without their newline) to `lines` and returns true when
/// the writer closed its end (or the read failed). Thread-safety: the caller
/// owns `partial`.
bool read_lines(int fd, std::string& partial, std::vector<std::string>& lines);

/// Splits "verb argument" at the first blank.
std::pair<std::string, std::string> split_verb(const std::string& line);

} // namespace mycelium::topology
