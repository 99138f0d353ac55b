#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mycelium/wire/handshake.hpp"

namespace mycelium::transports {

/// The label that starts every proof input; "v2" because the proof of the
/// first scheme (over the sender's own nonce, in the hello) used "v1", so a
/// proof of one scheme can never verify under the other.
inline constexpr char auth_label[] = "mycelium-auth-v2";

/// The proof in a side's `auth` frame (wire-protocol.md section 9.4):
///
///   HMAC-SHA256(secret, "mycelium-auth-v2" | challenge (16) | own.nonce (16)
///               | own.schema_digest (32) | own.node | 0x00 | own.service
///               | 0x00 | own.pid as u32 LE)
///
/// where `challenge` is the nonce of the *peer's* hello on this connection
/// and `own` is the hello the prover sent. Because the peer picks a fresh
/// nonce for every connection, a proof captured on one connection does not
/// verify on another. It proves knowledge of the secret; it does not
/// encrypt or sign anything. Thread-safe (no state).
wire::digest256 make_auth_proof(const std::string& secret,
                                const wire::digest128& challenge,
                                const wire::hello& own);

/// Checks, in constant time, that `proof` is the proof of the peer whose
/// hello is `remote`, answering our `challenge` (the nonce we sent).
bool check_auth_proof(const std::string& secret,
                      const wire::digest128& challenge,
                      const wire::hello& remote, const wire::digest256& proof);

/// Fills `out` with cryptographically random bytes (OpenSSL, else the OS).
void random_nonce(wire::digest128& out);

} // namespace mycelium::transports
