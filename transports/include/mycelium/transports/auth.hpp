#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mycelium/wire/handshake.hpp"

namespace mycelium::transports {

/// The authentication proof a hello carries when a shared secret is
/// configured: HMAC-SHA256(secret, "mycelium-auth-v1" | nonce | schema
/// digest | node | 0x00 | service | 0x00 | pid as u32 LE). It proves that
/// the sender knows the secret; it does not encrypt anything (see
/// docs/transports.md for what it does not protect against).
std::vector<uint8_t> make_auth_proof(const std::string& secret,
                                     const wire::hello& h);

/// Checks the proof in `remote` against `secret` in constant time.
bool check_auth_proof(const std::string& secret, const wire::hello& remote);

/// Fills `out` with cryptographically random bytes.
void random_nonce(wire::digest128& out);

} // namespace mycelium::transports
