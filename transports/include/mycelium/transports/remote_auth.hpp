#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message_handler.hpp>
#include <caf/node_id.hpp>
#include <caf/scoped_actor.hpp>

/// Authentication of CAF remote actor systems (BASP) by a shared secret, for
/// the services that accept work from other machines: `mycelium-backtest
/// worker` and the node daemon (`NODE_BINARY --serve`). BASP itself has no
/// authentication and no encryption: this proves that the asking process
/// knows the secret; it hides nothing.
///
/// The exchange, over two requests to the guarded actor:
///   1. `(remote_auth_atom)` -> a fresh nonce (32 hex digits) for the
///      sender's node;
///   2. `(remote_auth_atom, proof)` -> `ok`, where proof is
///      hex(HMAC-SHA256(secret, label ":" nonce)).
/// Each nonce verifies one proof; from then on the sender's node is trusted.
namespace mycelium::transports {

using remote_auth_atom = caf::atom_constant<caf::atom("mycauth")>;

/// The proof for `nonce`, as hex. Thread-safe (no state).
std::string remote_auth_proof(const std::string& secret, const std::string& label,
                              const std::string& nonce);

/// The guarded side's state: nonces handed out and nodes trusted. Belongs to
/// one actor (not thread-safe).
class remote_gate {
public:
  /// `label` separates the uses (a proof for a worker is no proof for a
  /// daemon); `what` names the guarded service in errors ("worker").
  /// An empty `secret` lets everyone in.
  remote_gate(std::string secret, std::string label, std::string what);

  /// Step 1: a fresh nonce for `who`.
  caf::expected<std::string> challenge(const caf::node_id& who);

  /// Step 2: trusts `who` if `proof` answers its nonce; else an
  /// `errc::auth_failed` error that says what to do.
  caf::error answer(const caf::node_id& who, const std::string& proof);

  /// Whether `sender` may use the service.
  bool allows(const caf::strong_actor_ptr& sender) const;

  /// The error for a sender that `allows` refuses.
  caf::error refusal() const;

  bool open() const noexcept { return secret_.empty(); }

private:
  std::string secret_;
  std::string label_;
  std::string what_;
  std::map<caf::node_id, std::string> nonces_;
  std::set<caf::node_id> trusted_;
};

/// The two handlers of the exchange for an actor that keeps `gate` (in its
/// state, so that it outlives the behaviour): combine them with the actor's
/// own, e.g. `remote_auth_handler(self, gate).or_else(...)`. A refused
/// proof is also written to stderr.
caf::message_handler remote_auth_handler(caf::local_actor* self, remote_gate& gate);

/// The asking side: runs the exchange with `guarded` (a remote actor whose
/// behaviour serves a `remote_gate`). Blocking; call it from outside actors.
caf::error remote_authenticate(caf::scoped_actor& self, const caf::actor& guarded,
                               const std::string& secret, const std::string& label,
                               std::chrono::milliseconds timeout);

/// True for "localhost", 127.0.0.0/8 and ::1. Thread-safe.
bool is_loopback(const std::string& host) noexcept;

/// Splits "HOST:PORT" (or a bare "PORT", with `default_host`); `what` names
/// the option in errors. Port 0 is allowed only with `allow_zero`.
caf::expected<std::pair<std::string, uint16_t>>
parse_host_port(const std::string& text, const std::string& what,
                const std::string& default_host = "127.0.0.1", bool allow_zero = false);

} // namespace mycelium::transports
