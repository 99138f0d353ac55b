#include "embedded_interpreter.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

#include <pybind11/embed.h>

#include "core_module.hpp"
#include "python_host.hpp"

namespace py = pybind11;

PYBIND11_EMBEDDED_MODULE(_mycelium_core, m) {
  mycelium::python::define_core(m, true);
}

namespace mycelium::python {

struct embedded_interpreter::impl {
  std::mutex mtx;
  std::condition_variable cv;
  bool running = false;
  bool stopping = false;
  std::thread thread;

  void run() {
    py::initialize_interpreter(false); // no signal handlers: the node has them
    // Where the mycelium package is when PYTHONPATH does not say: installed
    // next to this library, or the source tree it was built from.
    py::module_::import("sys").attr("path").attr("extend")(
      py::str(MYCELIUM_PYTHON_FALLBACK_PATH).attr("split")(":"));
    auto* state = PyEval_SaveThread(); // the GIL is free for service threads
    {
      std::unique_lock<std::mutex> guard{mtx};
      running = true;
      cv.notify_all();
      cv.wait(guard, [this] { return stopping; });
    }
    PyEval_RestoreThread(state);
    py::finalize_interpreter(); // joins the (finished) service threads
  }
};

embedded_interpreter& embedded_interpreter::instance() {
  static embedded_interpreter x;
  return x;
}

void embedded_interpreter::ensure() {
  static std::mutex start_mtx;
  std::lock_guard<std::mutex> start_guard{start_mtx};
  if (impl_ == nullptr) {
    impl_ = new impl;
    impl_->thread = std::thread{[p = impl_] { p->run(); }};
  }
  std::unique_lock<std::mutex> guard{impl_->mtx};
  impl_->cv.wait(guard, [this] { return impl_->running; });
}

embedded_interpreter::~embedded_interpreter() {
  if (impl_ == nullptr)
    return;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
  delete impl_;
}

namespace {

// Linked whole into a node binary (mycelium_add_node ... PYTHON), this
// makes every "python:pkg.module:Class" type startable in it.
const bool registered = [] {
  register_python_family([] { embedded_interpreter::instance().ensure(); });
  return true;
}();

} // namespace

} // namespace mycelium::python
