#include "mycelium/actors/loop_clock.hpp"

namespace mycelium {

loop_clock::~loop_clock() = default;

} // namespace mycelium
