// Location parsing: s3://bucket/prefix, file:///path, plain paths; S3 endpoint URLs through
// libcurl's URL API (https://curl.se/libcurl/c/libcurl-url.html) and their redaction.
#include <curl/curl.h>

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "storage/backends.h"
#include "storage/storage.h"

namespace hf::storage {
namespace {

bool valid_bucket_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

struct CurluFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using Curlu = std::unique_ptr<CURLU, CurluFree>;

// Parses an absolute URL; nullptr when libcurl refuses it.
Curlu parse_absolute(std::string_view text) {
  Curlu u(curl_url());
  if (!u) return nullptr;
  if (curl_url_set(u.get(), CURLUPART_URL, std::string(text).c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    return nullptr;
  return u;
}

// One part of a parsed URL; "" when absent.
std::string part(const Curlu& u, CURLUPart which, unsigned flags = 0) {
  char* value = nullptr;
  if (curl_url_get(u.get(), which, &value, flags) != CURLUE_OK || value == nullptr) return {};
  std::string out(value);
  curl_free(value);
  return out;
}

// By hand, for what libcurl cannot parse: the userinfo of "scheme://userinfo@host..." hidden.
std::string redact_by_hand(std::string_view url) {
  std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) return std::string(url);
  std::size_t start = sep + 3;
  std::size_t end = url.find_first_of("/?#", start);
  std::string_view authority = url.substr(start, end == std::string_view::npos ? url.npos : end - start);
  std::size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, start)) + "***@" + std::string(url.substr(start + at + 1));
}

}  // namespace

std::string redact_url(std::string_view url) {
  if (url.find('@') == std::string_view::npos) return std::string(url);
  Curlu u = parse_absolute(url);
  if (!u) return redact_by_hand(url);
  if (part(u, CURLUPART_PASSWORD).empty()) return std::string(url);  // "git@host": no secret
  if (curl_url_set(u.get(), CURLUPART_PASSWORD, "***", 0) != CURLUE_OK) return redact_by_hand(url);
  std::string out = part(u, CURLUPART_URL);
  return out.empty() ? redact_by_hand(url) : out;
}

Endpoint parse_endpoint(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorKind::kUsage, "endpoint URL " + why + ": '" + redact_url(text) + "'");
  };
  if (text.find("://") == std::string_view::npos) throw bad("needs a scheme (http:// or https://)");
  Curlu u = parse_absolute(text);
  if (!u) throw bad("is not a valid URL");
  Endpoint e;
  e.scheme = part(u, CURLUPART_SCHEME);
  if (e.scheme != "http" && e.scheme != "https") throw bad("scheme must be http or https");
  std::string host = part(u, CURLUPART_HOST);
  if (host.empty()) throw bad("has no host");
  // Curl omits a default port from Host:, and the signature must match what is sent.
  std::string port = part(u, CURLUPART_PORT);
  if (!port.empty() && port != (e.scheme == "https" ? "443" : "80")) host += ":" + port;
  e.host = host;
  e.base_path = part(u, CURLUPART_PATH, CURLU_URLDECODE);
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  e.had_userinfo = !part(u, CURLUPART_USER).empty() || !part(u, CURLUPART_PASSWORD).empty();
  return e;
}

std::string Url::str() const {
  if (scheme == Scheme::kLocal) return path;
  return "s3://" + bucket + (prefix.empty() ? "" : "/" + prefix);
}

std::string Url::key_for(std::string_view rel) const {
  if (rel.empty()) return prefix;
  if (prefix.empty()) return std::string(rel);
  return prefix + "/" + std::string(rel);
}

Url Url::child(std::string_view rel) const {
  Url out = *this;
  if (rel.empty()) return out;
  if (scheme == Scheme::kS3) {
    out.prefix = key_for(rel);
  } else {
    out.path = (path.empty() || path.back() == '/') ? path + std::string(rel) : path + "/" + std::string(rel);
  }
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  return out;
}

Url parse_url(std::string_view text) {
  Url url;
  if (text.empty()) throw Error(ErrorKind::kUsage, "empty location");
  std::size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    url.scheme = Scheme::kLocal;
    url.path = std::string(text);
    return url;
  }
  std::string scheme(text.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view rest = text.substr(sep + 3);
  if (scheme == "file") {
    // file:///abs/path or file://localhost/abs/path; a remote host is not ours to reach.
    if (rest.rfind("localhost/", 0) == 0) rest.remove_prefix(9);
    if (rest.empty() || rest.front() != '/')
      throw Error(ErrorKind::kUsage, "file URL must be file:///absolute/path: '" + std::string(text) + "'");
    url.scheme = Scheme::kLocal;
    url.path = std::string(rest);
    return url;
  }
  if (scheme != "s3")
    throw Error(ErrorKind::kUsage, "unsupported location scheme '" + scheme + "://' (use s3://, file:// or a path)");
  url.scheme = Scheme::kS3;
  std::size_t slash = rest.find('/');
  url.bucket = std::string(rest.substr(0, slash));
  if (url.bucket.empty()) throw Error(ErrorKind::kUsage, "missing bucket in '" + std::string(text) + "'");
  if (url.bucket.size() > 255 || !std::all_of(url.bucket.begin(), url.bucket.end(), valid_bucket_char))
    throw Error(ErrorKind::kUsage, "invalid bucket name '" + url.bucket + "'");
  if (slash != std::string_view::npos) url.prefix = std::string(rest.substr(slash + 1));
  while (!url.prefix.empty() && url.prefix.back() == '/') url.prefix.pop_back();
  return url;
}

}  // namespace hf::storage
