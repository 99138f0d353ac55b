#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/error.hpp>

#include "mycelium/actors/service_context.hpp"

namespace mycelium {

/// Spawns one instance of a service into an actor system.
using service_factory =
  std::function<caf::actor(caf::actor_system&, service_context)>;

/// Maps service type names to factories so that a node (and later a
/// topology) can spawn services by name. Thread-safe.
class service_registry {
public:
  /// The process-wide registry that MYCELIUM_REGISTER_SERVICE fills.
  static service_registry& global();

  /// Fails with `errc::already_registered` if `name` is taken.
  caf::error add(const std::string& name, service_factory f);

  /// Makes a factory for a type name of a family (e.g. the Python classes
  /// "python:pkg.module:Class"), or throws `std::runtime_error` saying why
  /// it cannot (thrown when the service is spawned, so the start fails with
  /// that text).
  using family_resolver = std::function<service_factory(const std::string& type)>;

  /// Registers a family of types: every name that starts with `prefix` and
  /// is not registered itself resolves through `resolver`. Fails with
  /// `errc::already_registered` if `prefix` is taken.
  caf::error add_family(const std::string& prefix, family_resolver resolver);

  /// Returns the factory registered under `name` (or of its family), or an
  /// empty function.
  service_factory find(const std::string& name) const;

  /// The registered names, then each family as `prefix*` (e.g. `python:*`).
  std::vector<std::string> names() const;

  /// Whether `name` is registered or belongs to a registered family.
  bool knows(const std::string& name) const;

private:
  mutable std::mutex mtx_;
  std::map<std::string, service_factory> factories_;
  std::map<std::string, family_resolver> families_;
};

/// Registers service class `T` (derived from mycelium::service) under `name`
/// in the global registry. Returns false (and logs) if the name is taken.
template <class T>
bool register_service(const std::string& name) {
  auto err = service_registry::global().add(
    name, [](caf::actor_system& sys, service_context ctx) {
      return sys.spawn<T>(std::move(ctx));
    });
  return !err;
}

} // namespace mycelium

#define MYCELIUM_CONCAT_IMPL(a, b) a##b
#define MYCELIUM_CONCAT(a, b) MYCELIUM_CONCAT_IMPL(a, b)

/// Registers `type` under the string `name` at static-initialization time.
/// Put it in the .cpp that defines the service and link that object into the
/// executable (an unreferenced object inside a static library is dropped by
/// the linker, and with it the registration).
#define MYCELIUM_REGISTER_SERVICE(name, type)                                  \
  static const bool MYCELIUM_CONCAT(mycelium_registered_, __LINE__)            \
    = ::mycelium::register_service<type>(name)
