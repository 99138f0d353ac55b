#pragma once

#include <string>

namespace mycelium {

enum class log_level { error, warning, info };

/// Writes one line "mycelium <level> [node/service] text" to stderr. One
/// write per line, so lines from concurrent threads do not interleave.
void log(log_level level, const std::string& who, const std::string& text);

/// Receives a copy of every line `log` writes (with its newline), with the
/// `who` it names. A node daemon uses it to send each node's lines to that
/// node's launcher.
using log_tap = void (*)(const std::string& who, const std::string& line);

/// Installs `tap` (nullptr removes it) for the whole process. Thread-safe; a
/// line being written while the tap changes may reach the old one.
void set_log_tap(log_tap tap) noexcept;

} // namespace mycelium
