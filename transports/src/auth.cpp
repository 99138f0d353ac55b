#include "mycelium/transports/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <random>

#include "mycelium/wire/byte_order.hpp"

namespace mycelium::transports {

namespace {

std::vector<uint8_t> proof_input(const wire::digest128& challenge,
                                 const wire::hello& own) {
  std::vector<uint8_t> in(auth_label, auth_label + sizeof(auth_label) - 1);
  in.insert(in.end(), challenge.begin(), challenge.end());
  in.insert(in.end(), own.nonce.begin(), own.nonce.end());
  in.insert(in.end(), own.schema_digest.begin(), own.schema_digest.end());
  in.insert(in.end(), own.node.begin(), own.node.end());
  in.push_back(0);
  in.insert(in.end(), own.service.begin(), own.service.end());
  in.push_back(0);
  uint8_t pid[4];
  wire::store_u32(pid, own.pid);
  in.insert(in.end(), pid, pid + 4);
  return in;
}

} // namespace

wire::digest256 make_auth_proof(const std::string& secret,
                                const wire::digest128& challenge,
                                const wire::hello& own) {
  auto in = proof_input(challenge, own);
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), in.data(),
       in.size(), md, &len);
  wire::digest256 out{};
  std::copy(md, md + std::min<size_t>(len, out.size()), out.begin());
  return out;
}

bool check_auth_proof(const std::string& secret,
                      const wire::digest128& challenge,
                      const wire::hello& remote, const wire::digest256& proof) {
  auto expected = make_auth_proof(secret, challenge, remote);
  return CRYPTO_memcmp(proof.data(), expected.data(), expected.size()) == 0;
}

void random_nonce(wire::digest128& out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    std::random_device rd; // OpenSSL's pool failed: fall back to the OS
    for (auto& b : out)
      b = static_cast<uint8_t>(rd());
  }
}

} // namespace mycelium::transports
