#include "mycelium/actors/loop_thread.hpp"

#include <thread>

namespace mycelium {

caf::io::network::multiplexer*& current_loop() noexcept {
  static thread_local caf::io::network::multiplexer* loop = nullptr;
  return loop;
}

bool runs_turns_of(const caf::io::network::multiplexer* m) noexcept {
  auto* cur = current_loop();
  if (cur != nullptr)
    return cur == m;
  return m != nullptr && std::this_thread::get_id() == m->thread_id();
}

} // namespace mycelium
