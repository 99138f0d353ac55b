#include "mycelium/transports/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <random>

#include "mycelium/wire/byte_order.hpp"

namespace mycelium::transports {

namespace {

std::vector<uint8_t> proof_input(const wire::hello& h) {
  static constexpr char label[] = "mycelium-auth-v1";
  std::vector<uint8_t> in(label, label + sizeof(label) - 1);
  in.insert(in.end(), h.nonce.begin(), h.nonce.end());
  in.insert(in.end(), h.schema_digest.begin(), h.schema_digest.end());
  in.insert(in.end(), h.node.begin(), h.node.end());
  in.push_back(0);
  in.insert(in.end(), h.service.begin(), h.service.end());
  in.push_back(0);
  uint8_t pid[4];
  wire::store_u32(pid, h.pid);
  in.insert(in.end(), pid, pid + 4);
  return in;
}

} // namespace

std::vector<uint8_t> make_auth_proof(const std::string& secret,
                                     const wire::hello& h) {
  auto in = proof_input(h);
  std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), in.data(),
       in.size(), out.data(), &len);
  out.resize(len);
  return out;
}

bool check_auth_proof(const std::string& secret, const wire::hello& remote) {
  auto expected = make_auth_proof(secret, remote);
  return remote.auth_proof.size() == expected.size()
         && CRYPTO_memcmp(remote.auth_proof.data(), expected.data(),
                          expected.size())
              == 0;
}

void random_nonce(wire::digest128& out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    std::random_device rd; // OpenSSL's pool failed: fall back to the OS
    for (auto& b : out)
      b = static_cast<uint8_t>(rd());
  }
}

} // namespace mycelium::transports
