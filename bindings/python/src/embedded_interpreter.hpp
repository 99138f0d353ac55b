#pragma once

namespace mycelium::python {

/// The Python interpreter of a C++ node that hosts Python services (the
/// `mycelium::python_embed` library). It lives on a thread of its own,
/// started by the first Python service and finalized at process exit,
/// after the node's services (and their Python threads) have stopped; no
/// Python signal handlers are installed (the node's main handles signals).
/// The module `_mycelium_core` is built in.
///
/// Thread-safety: `ensure` is thread-safe.
class embedded_interpreter {
public:
  /// The process's interpreter.
  static embedded_interpreter& instance();

  /// Starts the interpreter if it does not run yet; returns once it does.
  void ensure();

  ~embedded_interpreter();

private:
  embedded_interpreter() = default;
  struct impl;
  impl* impl_ = nullptr;
};

} // namespace mycelium::python
