#include "mycelium/transports/loop/loop_timers.hpp"

#include <vector>

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
  // Taken out first: an enqueue may resume nothing here (the loop resumes
  // its actors in the next turn), but a receiver elsewhere may schedule.
  std::vector<entry> ready;
  auto end = due_.upper_bound(now);
  for (auto i = due_.begin(); i != end; ++i)
    ready.push_back(std::move(i->second));
  due_.erase(due_.begin(), end);
  for (auto& e : ready)
    if (e.receiver)
      e.receiver->enqueue(std::move(e.content), eu);
  return ready.size();
}

} // namespace mycelium::transports
