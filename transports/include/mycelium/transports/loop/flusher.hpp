#pragma once

namespace mycelium::transports {

/// Something that gathers work during one turn of the node's I/O loop and
/// finishes it once, at the end of that turn: a socket link collects the
/// frames of a burst (a broker's resume handles up to `io_loop::resume_batch`
/// messages) and hands them to the kernel in one system call, where one call
/// per frame would cost the kernel's whole send path each time (about 10 us
/// per loopback TCP send on this VM).
///
/// A flusher asks for its turn with `io_loop::flush_at_turn_end` and must
/// withdraw with `io_loop::cancel_flush` before it dies.
///
/// Thread-safety: every member runs on the loop's thread.
class flusher {
public:
  virtual ~flusher();

  /// The turn ends: finish what was gathered. May ask for the next turn's
  /// end again.
  virtual void flush() = 0;
};

} // namespace mycelium::transports
