#include "python_host.hpp"

#include <mutex>

#include <pybind11/pybind11.h>

#include "mycelium/actors/log.hpp"
#include "mycelium/actors/service_registry.hpp"
#include "mycelium/errc.hpp"

namespace py = pybind11;

namespace mycelium::python {

namespace {

/// Queues the struct itself when the bridge has its type.
bool queue_value(const std::atomic<const schema_bridge*>& bridge, inbox& in,
                 uint32_t type_id, const void* value) {
  auto* b = bridge.load(std::memory_order_acquire);
  const bridge_entry* e = b != nullptr ? b->find(type_id) : nullptr;
  if (e == nullptr)
    return false;
  in.push_value(type_id, e->copy(value));
  return true;
}

} // namespace

python_host::python_host(std::string type, std::shared_ptr<mycelium::python::inbox> in,
                         bool lend_loop)
  : type_(std::move(type)), inbox_(std::move(in)), lend_loop_(lend_loop) {
}

python_host::~python_host() = default;

void python_host::start(std::shared_ptr<untyped_handle> h) {
  bridge_.store(bridge_registry::global().find(h->schema()), std::memory_order_release);
  std::string failure;
  // PyGILState rather than pybind11's gil_scoped_acquire: this is a CAF
  // worker that may never have run Python, and pybind11 (2.10) looks up its
  // internals before it holds the GIL.
  auto gil = PyGILState_Ensure();
  try {
    py_handle ph{h, inbox_, nullptr};
    ph.lend = lending_buses::find(&h->bus());
    if (ph.lend.loop == nullptr && lend_loop_)
      if (auto* l = transports::io_loop::of(h->system())) {
        // A C++ node: its loop outlives the service's thread (stop waits
        // for that thread), so the lend needs no gate.
        l->enable_lending();
        ph.lend.loop = l;
      }
    py::module_::import("mycelium._hosting").attr("run_service")(type_, ph);
    running_ = true;
  } catch (py::error_already_set& e) {
    failure = e.what();
  }
  PyGILState_Release(gil);
  if (!running_)
    h->started(make_error(errc::service_failed,
                          "Python service '" + h->name() + "' (" + type_
                            + ") could not start: " + failure));
}

void python_host::deliver(uint32_t type_id, const uint8_t* payload, size_t n) {
  inbox_->push_message(type_id, payload, n);
}

bool python_host::deliver_value(uint32_t type_id, const void* value) {
  return queue_value(bridge_, *inbox_, type_id, value);
}

void python_host::request(uint64_t id, uint32_t type_id, const uint8_t* payload,
                          size_t n) {
  inbox_->push_request(id, type_id, payload, n);
}

void python_host::stop(const caf::error& reason) {
  if (!running_)
    return;
  inbox_->push_stop(reason ? render(reason) : std::string{});
  if (!inbox_->await_finished(std::chrono::seconds{10}))
    log(log_level::error, type_,
        "the Python service did not finish within 10 s of its stop (a handler or "
        "on_stop still runs); going on without it");
}

client_host::client_host(std::shared_ptr<mycelium::python::inbox> in)
  : inbox_(std::move(in)) {
}

void client_host::start(std::shared_ptr<untyped_handle> h) {
  bridge_.store(bridge_registry::global().find(h->schema()), std::memory_order_release);
  handle_ = h;
  h->started();
}

void client_host::deliver(uint32_t type_id, const uint8_t* payload, size_t n) {
  inbox_->push_message(type_id, payload, n);
}

bool client_host::deliver_value(uint32_t type_id, const void* value) {
  return queue_value(bridge_, *inbox_, type_id, value);
}

void client_host::request(uint64_t id, uint32_t, const uint8_t*, size_t) {
  handle_->reply_error(id, "a Python bus client does not serve requests");
}

void client_host::stop(const caf::error&) {
  inbox_->push_stop({});
}

void register_python_family(std::function<void()> before_start) {
  static std::once_flag once;
  std::call_once(once, [&] {
    auto err = service_registry::global().add_family(
      "python:", [before_start](const std::string& type) -> service_factory {
        return untyped_service_factory([before_start, type](const service_context& ctx) {
          if (before_start)
            before_start();
          size_t capacity = default_queue_capacity;
          if (auto i = ctx.params.find("queue_capacity"); i != ctx.params.end()) {
            auto* n = caf::get_if<int64_t>(&i->second);
            if (n == nullptr || *n < 1)
              throw std::runtime_error("service '" + ctx.name
                                       + "': param queue_capacity must be a "
                                         "positive integer");
            capacity = static_cast<size_t>(*n);
          }
          bool lend_loop = false;
          if (auto i = ctx.params.find("lend_loop"); i != ctx.params.end()) {
            auto* b = caf::get_if<bool>(&i->second);
            if (b == nullptr)
              throw std::runtime_error("service '" + ctx.name
                                       + "': param lend_loop must be true or false");
            lend_loop = *b;
          }
          return std::make_shared<python_host>(
            type, std::make_shared<inbox>(ctx.name, capacity), lend_loop);
        });
      });
    if (err)
      log(log_level::error, "python", render(err));
  });
}

} // namespace mycelium::python
