#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "inbox.hpp"
#include "lending_buses.hpp"
#include "runtime_gate.hpp"
#include "mycelium/actors/foreign_host.hpp"
#include "mycelium/actors/untyped_service.hpp"
#include "mycelium/python/message_bridge.hpp"

namespace mycelium::python {

/// What Python code holds of one bus participant: the untyped service API
/// and the queue its deliveries arrive in. Copyable; thread-safe as its
/// parts.
struct py_handle {
  /// The Python classes a handle's deliveries become without the codec
  /// (the Python bridge), by type id. Thread-safety: GIL-bound.
  struct bridged_classes {
    bool looked_up = false;
    const schema_bridge* bridge = nullptr; ///< of the handle's schema, or null
    std::unordered_map<uint32_t, const class_info*> by_type;
    /// The class the last publish bound (null info: not bridged).
    PyTypeObject* last_type = nullptr;
    const class_info* last_info = nullptr;
  };

  std::shared_ptr<untyped_handle> handle;
  std::shared_ptr<mycelium::python::inbox> inbox;
  /// Set when the runtime belongs to a Python `Node` (which can be
  /// stopped); null in a C++ node, whose runtime outlives Python.
  std::shared_ptr<runtime_gate> gate;
  std::shared_ptr<bridged_classes> classes = std::make_shared<bridged_classes>();
  /// The node's I/O loop and gate when it lends its turns to waiting
  /// callers (a Python process's runtime, `Runtime.enable_lending`): `next`
  /// runs the loop while it spins, inside a pass of the gate. Empty
  /// otherwise.
  lending_buses::entry lend{};

  /// The bridge of the handle's schema, or null (GIL held).
  const schema_bridge* bridge() const {
    if (!classes->looked_up) {
      classes->bridge = bridge_registry::global().find(handle->schema());
      classes->looked_up = true;
    }
    return classes->bridge;
  }
};

/// The foreign host of one Python service instance (`type` is
/// "python:pkg.module:Class"). Deliveries and requests only go into the
/// inbox; `start` hands the handle to `mycelium._hosting.run_service`,
/// which imports the class and serves the inbox on a Python thread of its
/// own, so Python never runs on a CAF worker or the I/O loop beyond that
/// one call, and `stop` waits for that thread's `on_stop`.
///
/// `lend_loop` (the service param of that name): in a C++ node, the
/// service's thread runs the node's I/O loop while it spins waiting for a
/// message, as a Python process's node does (io_loop::lend). Python code
/// still never runs on the loop thread; the loop's C++ work runs on the
/// Python thread while it waits, with the GIL released.
///
/// Thread-safety: as `foreign_host`.
class python_host : public foreign_host {
public:
  python_host(std::string type, std::shared_ptr<mycelium::python::inbox> in,
              bool lend_loop = false);
  ~python_host() override;

  void start(std::shared_ptr<untyped_handle> h) override;
  void deliver(uint32_t type_id, const uint8_t* payload, size_t n) override;
  bool deliver_value(uint32_t type_id, const void* value) override;
  void request(uint64_t id, uint32_t type_id, const uint8_t* payload, size_t n) override;
  void stop(const caf::error& reason) override;

private:
  std::string type_;
  std::shared_ptr<mycelium::python::inbox> inbox_;
  /// The bridge of the node's schema (set in `start`), or null.
  std::atomic<const schema_bridge*> bridge_{nullptr};
  bool lend_loop_;
  bool running_ = false;
};

/// The host of a bus client that is not a service (what `mycelium.Node`
/// subscribes and publishes through): starts at once, queues deliveries,
/// refuses requests. Thread-safety: as `foreign_host`.
class client_host : public foreign_host {
public:
  explicit client_host(std::shared_ptr<mycelium::python::inbox> in);

  void start(std::shared_ptr<untyped_handle> h) override;
  void deliver(uint32_t type_id, const uint8_t* payload, size_t n) override;
  bool deliver_value(uint32_t type_id, const void* value) override;
  void request(uint64_t id, uint32_t type_id, const uint8_t* payload, size_t n) override;
  void stop(const caf::error& reason) override;

  /// The handle given to `start` (null before).
  std::shared_ptr<untyped_handle> handle() const { return handle_; }

private:
  std::shared_ptr<mycelium::python::inbox> inbox_;
  std::atomic<const schema_bridge*> bridge_{nullptr};
  std::shared_ptr<untyped_handle> handle_;
};

/// Default bound of a Python service's queue (service parameter
/// `queue_capacity` overrides it).
inline constexpr size_t default_queue_capacity = 65536;

/// Registers the service family "python:" in the global registry (once per
/// process; later calls do nothing). `before_start`, if set, runs before
/// each Python service is made (the embedding library starts the
/// interpreter there).
void register_python_family(std::function<void()> before_start = {});

} // namespace mycelium::python
