#pragma once

#include <caf/io/network/multiplexer.hpp>

namespace mycelium {

/// Which I/O loop's turns the calling thread runs now. The node's loop
/// (transports::io_loop) sets it on its own thread, and on a thread it
/// lends its turns to (a Python caller waiting for a message drives the
/// loop itself, docs/architecture.md "Lending the loop"); it is null
/// elsewhere. Code that may act directly only "on the loop" (run a loop
/// service's handler inline, write a link's frame itself, never wait for
/// the loop to drain) asks `runs_turns_of`, not the thread id: with the
/// loop lent, that is another thread, which holds the loop's turn lock.
///
/// Thread-safety: per thread (a thread-local).
caf::io::network::multiplexer*& current_loop() noexcept;

/// Whether the calling thread runs `m`'s turns now: it is `current_loop()`,
/// or, for a multiplexer that never sets it (CAF's default backend), the
/// calling thread is `m`'s own.
bool runs_turns_of(const caf::io::network::multiplexer* m) noexcept;

} // namespace mycelium
