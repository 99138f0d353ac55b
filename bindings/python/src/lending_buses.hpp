#pragma once

#include <memory>

#include "mycelium/bus/bus.hpp"
#include "mycelium/transports/loop/io_loop.hpp"
#include "runtime_gate.hpp"

namespace mycelium::python {

/// The buses whose node lends its I/O loop to waiting Python callers
/// (transports::io_loop::lend): a Python process's runtime registers its
/// node's bus when it enables lending and withdraws it before it stops.
/// The handles of that node (its subscriptions, and the Python services
/// started on its bus) take their entry from here. Thread-safety: a mutex.
class lending_buses {
public:
  /// A loop to lend, and the runtime's gate: the loop lives as long as the
  /// gate lets calls in. Empty for a node that does not lend.
  struct entry {
    transports::io_loop* loop = nullptr;
    std::shared_ptr<runtime_gate> gate;
  };

  static void add(const mycelium::bus* b, entry e);
  static void remove(const mycelium::bus* b);
  /// The entry of `b`, or an empty one.
  static entry find(const mycelium::bus* b);
};

} // namespace mycelium::python
