#pragma once

#include <cstdint>
#include <string>

#include "trading_system.hpp"

namespace trading {

/// Risk's keyed hash of an order (`order::check`): FNV-1a 64 over the key's
/// bytes, then order_id (8 bytes LE), bar_seq (8 LE), the symbol's bytes,
/// side (1 byte), qty (4 LE), the IEEE bits of limit (8 LE) and risk_epoch
/// (8 LE). The OCaml risk service computes the same (docs/ocaml.md); an
/// order whose check differs was not made by risk with this key, and
/// execution refuses it. A plain function; thread-safe.
uint64_t order_check(const std::string& key, const mycelium::trading::order& o);

} // namespace trading
