// EVP digests with checked return codes, and hex encoding.
#include "core/digest.h"

#include <openssl/evp.h>

#include <utility>

#include "core/error.h"

namespace hf {
namespace {

const EVP_MD* md_of(DigestAlgorithm algorithm) {
  return algorithm == DigestAlgorithm::kMd5 ? EVP_md5() : EVP_sha256();
}

EVP_MD_CTX* ctx_of(void* p) { return static_cast<EVP_MD_CTX*>(p); }

[[noreturn]] void fail(const char* step) {
  throw Error(ErrorKind::kInternal, std::string("OpenSSL digest ") + step + " failed");
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Digest::Digest(DigestAlgorithm algorithm) : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) fail("allocation");
  if (EVP_DigestInit_ex(ctx_of(ctx_), md_of(algorithm), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_of(ctx_));
    fail("init");
  }
}

Digest::~Digest() { EVP_MD_CTX_free(ctx_of(ctx_)); }

Digest::Digest(Digest&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}

Digest& Digest::operator=(Digest&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_of(ctx_));
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

void Digest::update(const void* data, std::size_t size) {
  if (ctx_ == nullptr) throw Error(ErrorKind::kInternal, "digest used after move");
  if (EVP_DigestUpdate(ctx_of(ctx_), data, size) != 1) fail("update");
}

std::string Digest::raw_digest() {
  if (ctx_ == nullptr) throw Error(ErrorKind::kInternal, "digest used after move");
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_of(ctx_), out, &len) != 1) fail("final");
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Digest::hex_digest() { return to_hex(raw_digest()); }

std::string digest_raw(DigestAlgorithm algorithm, std::string_view data) {
  Digest d(algorithm);
  d.update(data);
  return d.raw_digest();
}

std::string sha256_hex(std::string_view data) { return to_hex(digest_raw(DigestAlgorithm::kSha256, data)); }

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) throw Error(ErrorKind::kDataErr, "odd-length hex string");
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) throw Error(ErrorKind::kDataErr, "invalid hex digit");
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace hf
