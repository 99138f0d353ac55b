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

caf::error service_registry::add_family(const std::string& prefix,
                                        family_resolver resolver) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (prefix.empty() || !families_.emplace(prefix, std::move(resolver)).second)
    return make_error(errc::already_registered,
                      "service type family '" + prefix + "*' is already registered");
  return caf::none;
}

service_factory service_registry::find(const std::string& name) const {
  family_resolver resolver;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto i = factories_.find(name); i != factories_.end())
      return i->second;
    for (auto& [prefix, r] : families_)
      if (name.compare(0, prefix.size(), prefix) == 0)
        resolver = r;
  }
  if (!resolver)
    return {};
  // Resolved when spawned: an error (a module that does not import) then
  // fails the start with its text, like a throwing constructor.
  return [resolver, name](caf::actor_system& sys, service_context ctx) {
    return resolver(name)(sys, std::move(ctx));
  };
}

std::vector<std::string> service_registry::names() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<std::string> out;
  for (auto& kv : factories_)
    out.push_back(kv.first);
  for (auto& kv : families_)
    out.push_back(kv.first + "*");
  return out;
}

bool service_registry::knows(const std::string& name) const {
  std::lock_guard<std::mutex> guard{mtx_};
  if (factories_.count(name) != 0)
    return true;
  for (auto& kv : families_)
    if (name.compare(0, kv.first.size(), kv.first) == 0)
      return true;
  return false;
}

} // namespace mycelium
