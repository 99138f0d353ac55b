#include "mycelium/bus/port.hpp"

namespace mycelium {

port::~port() = default;

} // namespace mycelium
