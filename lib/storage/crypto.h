// Small crypto/encoding helpers for S3 over OpenSSL: hex, base64, raw SHA-256/MD5 digests,
// HMAC-SHA256, streaming MD5 (streaming SHA-256 is hf::Sha256). Internal to lib/storage.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hf::storage {

std::string to_hex(std::string_view bytes);
// Throws Error(kDataErr) on odd length or a non-hex digit.
std::string from_hex(std::string_view hex);
std::string base64_encode(std::string_view bytes);

std::string sha256_raw(std::string_view data);                     // 32 bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // 32 bytes
std::string md5_raw(std::string_view data);                         // 16 bytes

// Streaming MD5 (OpenSSL EVP). Not copyable.
class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;
  void update(const void* data, std::size_t size);
  std::string raw_digest();  // finalizes; call once

 private:
  void* ctx_;
};

}  // namespace hf::storage
