#include "mycelium/transports/remote_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdio>

#include <caf/local_actor.hpp>
#include <caf/result.hpp>
#include <caf/scoped_actor.hpp>

#include "mycelium/errc.hpp"

namespace mycelium::transports {

namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

bool same(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace

std::string remote_auth_proof(const std::string& secret, const std::string& label,
                              const std::string& nonce) {
  std::string msg = label + ":" + nonce;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  return hex(out, len);
}

remote_gate::remote_gate(std::string secret, std::string label, std::string what)
  : secret_(std::move(secret)), label_(std::move(label)), what_(std::move(what)) {
}

caf::expected<std::string> remote_gate::challenge(const caf::node_id& who) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return make_error(errc::auth_failed, "the " + what_ + " has no random numbers");
  auto nonce = hex(raw, sizeof(raw));
  nonces_[who] = nonce;
  return nonce;
}

caf::error remote_gate::answer(const caf::node_id& who, const std::string& proof) {
  if (secret_.empty())
    return caf::none;
  auto i = nonces_.find(who);
  bool good = i != nonces_.end() && same(proof, remote_auth_proof(secret_, label_, i->second));
  if (i != nonces_.end())
    nonces_.erase(i); // one nonce, one proof
  if (!good)
    return make_error(errc::auth_failed,
                      "the " + what_ + " refused the proof: this secret differs "
                        "from the " + what_ + "'s --secret-file");
  trusted_.insert(who);
  return caf::none;
}

bool remote_gate::allows(const caf::strong_actor_ptr& sender) const {
  return secret_.empty() || (sender && trusted_.count(sender->node()) != 0);
}

caf::error remote_gate::refusal() const {
  return make_error(errc::auth_failed,
                    "this " + what_ + " requires authentication: give the asking "
                      "side the secret of the " + what_ + "'s --secret-file");
}

caf::message_handler remote_auth_handler(caf::local_actor* self, remote_gate& gate) {
  return {
    [self, &gate](remote_auth_atom) -> caf::result<std::string> {
      auto& s = self->current_sender();
      if (!s)
        return gate.refusal();
      auto nonce = gate.challenge(s->node());
      if (!nonce)
        return nonce.error();
      return *nonce;
    },
    [self, &gate](remote_auth_atom, const std::string& proof) -> caf::result<caf::atom_value> {
      auto& s = self->current_sender();
      if (!s)
        return gate.refusal();
      if (auto err = gate.answer(s->node(), proof)) {
        std::fprintf(stderr, "%s: refused a peer with a wrong secret\n", self->name());
        return err;
      }
      return caf::atom("ok");
    },
  };
}

caf::error remote_authenticate(caf::scoped_actor& self, const caf::actor& guarded,
                               const std::string& secret, const std::string& label,
                               std::chrono::milliseconds timeout) {
  caf::error err;
  std::string nonce;
  self->request(guarded, timeout, remote_auth_atom::value)
    .receive([&](std::string& n) { nonce = std::move(n); },
             [&](caf::error& e) { err = std::move(e); });
  if (err)
    return err;
  self->request(guarded, timeout, remote_auth_atom::value,
                remote_auth_proof(secret, label, nonce))
    .receive([](caf::atom_value) {}, [&](caf::error& e) { err = std::move(e); });
  return err;
}

bool is_loopback(const std::string& host) noexcept {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

caf::expected<std::pair<std::string, uint16_t>>
parse_host_port(const std::string& text, const std::string& what,
                const std::string& default_host, bool allow_zero) {
  auto colon = text.rfind(':');
  auto host = colon == std::string::npos ? default_host : text.substr(0, colon);
  auto port_text = colon == std::string::npos ? text : text.substr(colon + 1);
  if (host.empty() || port_text.empty()
      || port_text.find_first_not_of("0123456789") != std::string::npos
      || port_text.size() > 5)
    return make_error(errc::config_invalid,
                      what + ": '" + text + "' is not HOST:PORT");
  auto port = std::stoul(port_text);
  if (port > 65535 || (port == 0 && !allow_zero))
    return make_error(errc::config_invalid,
                      what + ": '" + text + "' has no valid port ("
                        + (allow_zero ? "0" : "1") + "..65535)");
  return std::pair{host, static_cast<uint16_t>(port)};
}

} // namespace mycelium::transports
