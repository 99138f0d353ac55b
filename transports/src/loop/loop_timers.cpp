#include "mycelium/transports/loop/loop_timers.hpp"

namespace mycelium::transports {

void loop_timers::schedule(time_point due, caf::strong_actor_ptr receiver,
                           caf::mailbox_element_ptr content) {
  // multimap inserts an equal key after the ones it has: ties keep their order
  due_.emplace(due, entry{std::move(receiver), std::move(content)});
}

loop_timers::time_point loop_timers::next_due() const noexcept {
  return due_.empty() ? time_point::max() : due_.begin()->first;
}

size_t loop_timers::fire(time_point now, caf::execution_unit* eu) {
  // Each taken out of the map before its enqueue (which resumes nothing
  // here: the loop resumes its actors after this).
  size_t n = 0;
  while (!due_.empty() && due_.begin()->first <= now) {
    auto node = due_.extract(due_.begin());
    ++n;
    if (auto& e = node.mapped(); e.receiver)
      e.receiver->enqueue(std::move(e.content), eu);
  }
  return n;
}

} // namespace mycelium::transports
