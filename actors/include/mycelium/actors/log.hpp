#pragma once

#include <string>

namespace mycelium {

enum class log_level { error, warning, info };

/// Writes one line "mycelium <level> [node/service] text" to stderr. One
/// write per line, so lines from concurrent threads do not interleave.
void log(log_level level, const std::string& who, const std::string& text);

} // namespace mycelium
