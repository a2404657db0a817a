// Small crypto/encoding helpers the S3 client needs beyond core/digest.h: base64 and HMAC-SHA256
// (SigV4), and raw one-shot digests. Internal to lib/storage.
#pragma once

#include <string>
#include <string_view>

#include "core/digest.h"

namespace hf::storage {

std::string base64_encode(std::string_view bytes);
// Throws Error(kInternal) when OpenSSL fails.
std::string hmac_sha256(std::string_view key, std::string_view data);  // 32 bytes

inline std::string sha256_raw(std::string_view data) { return digest_raw(DigestAlgorithm::kSha256, data); }  // 32 bytes
inline std::string md5_raw(std::string_view data) { return digest_raw(DigestAlgorithm::kMd5, data); }        // 16 bytes

}  // namespace hf::storage
