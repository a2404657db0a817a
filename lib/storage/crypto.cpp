// OpenSSL-backed base64 and HMAC for the S3 client (digests are core/digest.h's).
#include "storage/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/error.h"

namespace hf::storage {

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  if (n < 0) throw Error(ErrorKind::kInternal, "OpenSSL base64 encoding failed");
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len) == nullptr)
    throw Error(ErrorKind::kInternal, "OpenSSL HMAC failed");
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace hf::storage
