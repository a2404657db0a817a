// Location parsing: s3://bucket/prefix, file:///path, plain paths.
#include <algorithm>

#include "core/error.h"
#include "storage/storage.h"

namespace hf::storage {
namespace {

bool valid_bucket_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

}  // namespace

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
