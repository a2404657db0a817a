// Message digests over OpenSSL's EVP interface, with every OpenSSL return code checked, and hex
// encoding. The only place in lib/ that calls EVP digest functions (HMAC lives with SigV4).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hf {

enum class DigestAlgorithm { kSha256, kMd5 };

// Streaming digest. Movable, not copyable, not thread-safe. Every method throws
// Error(kInternal) when OpenSSL reports a failure (e.g. MD5 refused by a FIPS-only provider).
class Digest {
 public:
  explicit Digest(DigestAlgorithm algorithm);
  ~Digest();
  Digest(Digest&& other) noexcept;
  Digest& operator=(Digest&& other) noexcept;
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Finalizes: call one of these once, then only destroy or move-assign the object.
  std::string raw_digest();
  std::string hex_digest();

 private:
  void* ctx_ = nullptr;  // EVP_MD_CTX*, kept opaque so <openssl/evp.h> stays out of includers
};

class Sha256 : public Digest {
 public:
  Sha256() : Digest(DigestAlgorithm::kSha256) {}
};

class Md5 : public Digest {
 public:
  Md5() : Digest(DigestAlgorithm::kMd5) {}
};

// One-shot digests of `data`.
std::string digest_raw(DigestAlgorithm algorithm, std::string_view data);
std::string sha256_hex(std::string_view data);

// Lower-case hex of `bytes`.
std::string to_hex(std::string_view bytes);
// Inverse of to_hex (either case). Throws Error(kDataErr) on odd length or a non-hex digit.
std::string from_hex(std::string_view hex);

}  // namespace hf
