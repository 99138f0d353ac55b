#include "lending_buses.hpp"

#include <mutex>
#include <unordered_map>

namespace mycelium::python {

namespace {

std::mutex lending_mtx;
std::unordered_map<const mycelium::bus*, lending_buses::entry>& lending_map() {
  static auto* m = new std::unordered_map<const mycelium::bus*, lending_buses::entry>;
  return *m; // never destroyed: used until exit
}

} // namespace

void lending_buses::add(const mycelium::bus* b, entry e) {
  std::lock_guard<std::mutex> guard{lending_mtx};
  lending_map()[b] = std::move(e);
}

void lending_buses::remove(const mycelium::bus* b) {
  std::lock_guard<std::mutex> guard{lending_mtx};
  lending_map().erase(b);
}

lending_buses::entry lending_buses::find(const mycelium::bus* b) {
  std::lock_guard<std::mutex> guard{lending_mtx};
  auto i = lending_map().find(b);
  return i == lending_map().end() ? entry{} : i->second;
}

} // namespace mycelium::python
