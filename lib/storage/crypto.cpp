// OpenSSL-backed digests and encodings for the S3 client.
#include "storage/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/error.h"

namespace hf::storage {
namespace {

EVP_MD_CTX* new_ctx(const EVP_MD* md) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, md, nullptr) != 1)
    throw Error(ErrorKind::kInternal, "OpenSSL digest init failed");
  return ctx;
}

std::string finish(void* ctx) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx), out, &len) != 1)
    throw Error(ErrorKind::kInternal, "OpenSSL digest failed");
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string one_shot(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1)
    throw Error(ErrorKind::kInternal, "OpenSSL digest failed");
  return std::string(reinterpret_cast<char*>(out), len);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

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

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string sha256_raw(std::string_view data) { return one_shot(EVP_sha256(), data); }
std::string md5_raw(std::string_view data) { return one_shot(EVP_md5(), data); }

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len) == nullptr)
    throw Error(ErrorKind::kInternal, "OpenSSL HMAC failed");
  return std::string(reinterpret_cast<char*>(out), len);
}

Md5::Md5() : ctx_(new_ctx(EVP_md5())) {}
Md5::~Md5() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Md5::update(const void* data, std::size_t size) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, size);
}
std::string Md5::raw_digest() { return finish(ctx_); }

}  // namespace hf::storage
