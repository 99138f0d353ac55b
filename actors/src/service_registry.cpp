#include "mycelium/actors/service_registry.hpp"

#include "mycelium/actors/log.hpp"
#include "mycelium/errc.hpp"

namespace mycelium {

service_registry& service_registry::global() {
  static service_registry instance;
  return instance;
}

caf::error service_registry::add(const std::string& name, service_factory f) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!factories_.emplace(name, std::move(f)).second) {
    log(log_level::error, "registry",
        "service type '" + name + "' is registered twice; keep one definition");
    return make_error(errc::already_registered,
                      "service type '" + name + "' is already registered");
  }
  return caf::none;
}

service_factory service_registry::find(const std::string& name) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = factories_.find(name);
  return i == factories_.end() ? service_factory{} : i->second;
}

std::vector<std::string> service_registry::names() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<std::string> out;
  for (auto& kv : factories_)
    out.push_back(kv.first);
  return out;
}

} // namespace mycelium
