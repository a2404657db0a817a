// SigV4 signing (see sigv4.h for the spec links).
#include "storage/sigv4.h"

#include <algorithm>
#include <ctime>

#include "storage/crypto.h"

namespace hf::storage::sigv4 {
namespace {

constexpr const char* kAlgorithm = "AWS4-HMAC-SHA256";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Trims and collapses runs of spaces, as the canonical header value rule requires.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

struct Canonical {
  std::string headers;         // "name:value\n" lines
  std::string signed_headers;  // "a;b;c"
};

Canonical canonical_headers(const Pairs& headers) {
  std::vector<std::pair<std::string, std::string>> sorted;
  sorted.reserve(headers.size());
  for (const auto& [name, value] : headers) sorted.emplace_back(lower(name), canonical_value(value));
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Canonical out;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0 && sorted[i].first == sorted[i - 1].first) {
      out.headers.back() = ',';  // same name twice: values joined with ','
      out.headers += sorted[i].second + "\n";
      continue;
    }
    out.headers += sorted[i].first + ":" + sorted[i].second + "\n";
    if (!out.signed_headers.empty()) out.signed_headers += ';';
    out.signed_headers += sorted[i].first;
  }
  return out;
}

std::string scope_of(std::string_view amz_date, std::string_view region, std::string_view service) {
  return std::string(amz_date.substr(0, 8)) + "/" + std::string(region) + "/" +
         std::string(service) + "/aws4_request";
}

Pairs with_host(const Request& request) {
  Pairs headers = request.headers;
  bool has_host = std::any_of(headers.begin(), headers.end(),
                              [](const auto& h) { return lower(h.first) == "host"; });
  if (!has_host) headers.emplace_back("host", request.host);
  return headers;
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string canonical_query(const Pairs& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string canonical_request(std::string_view method, std::string_view path,
                              std::string_view canonical_query_string, const Pairs& headers,
                              std::string_view payload_hash, std::string* signed_headers) {
  Canonical c = canonical_headers(headers);
  if (signed_headers != nullptr) *signed_headers = c.signed_headers;
  std::string out;
  out.reserve(256 + c.headers.size());
  out += method;
  out += '\n';
  out += uri_encode(path.empty() ? "/" : path, true);
  out += '\n';
  out += canonical_query_string;
  out += '\n';
  out += c.headers;
  out += '\n';
  out += c.signed_headers;
  out += '\n';
  out += payload_hash;
  return out;
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request) {
  return std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" + std::string(scope) + "\n" +
         to_hex(sha256_raw(canonical_request));
}

std::string signing_key(std::string_view secret, std::string_view date8, std::string_view region,
                        std::string_view service) {
  std::string k = hmac_sha256("AWS4" + std::string(secret), date8);
  k = hmac_sha256(k, region);
  k = hmac_sha256(k, service);
  return hmac_sha256(k, "aws4_request");
}

Pairs sign_headers(const Request& request, std::string_view payload_hash,
                   const Credentials& credentials, std::string_view region,
                   std::string_view service, std::string_view amz_date) {
  Pairs added;
  added.emplace_back("x-amz-date", std::string(amz_date));
  added.emplace_back("x-amz-content-sha256", std::string(payload_hash));
  if (!credentials.session_token.empty())
    added.emplace_back("x-amz-security-token", credentials.session_token);
  Pairs headers = with_host(request);
  headers.insert(headers.end(), added.begin(), added.end());

  std::string signed_headers;
  std::string creq = canonical_request(request.method, request.path, canonical_query(request.query),
                                       headers, payload_hash, &signed_headers);
  std::string scope = scope_of(amz_date, region, service);
  std::string sts = string_to_sign(amz_date, scope, creq);
  std::string key = signing_key(credentials.secret_access_key, amz_date.substr(0, 8), region, service);
  std::string signature = to_hex(hmac_sha256(key, sts));
  added.emplace_back("authorization", std::string(kAlgorithm) + " Credential=" +
                                          credentials.access_key_id + "/" + scope +
                                          ",SignedHeaders=" + signed_headers +
                                          ",Signature=" + signature);
  return added;
}

std::string presign_query(const Request& request, const Credentials& credentials,
                          std::string_view region, std::string_view service,
                          std::string_view amz_date, long expires_s) {
  Pairs headers = with_host(request);
  std::string signed_headers = canonical_headers(headers).signed_headers;
  std::string scope = scope_of(amz_date, region, service);
  Pairs query = request.query;
  query.emplace_back("X-Amz-Algorithm", kAlgorithm);
  query.emplace_back("X-Amz-Credential", credentials.access_key_id + "/" + scope);
  query.emplace_back("X-Amz-Date", std::string(amz_date));
  query.emplace_back("X-Amz-Expires", std::to_string(expires_s));
  query.emplace_back("X-Amz-SignedHeaders", signed_headers);
  if (!credentials.session_token.empty())
    query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  std::string cq = canonical_query(query);
  std::string creq =
      canonical_request(request.method, request.path, cq, headers, kUnsignedPayload, nullptr);
  std::string sts = string_to_sign(amz_date, scope, creq);
  std::string key = signing_key(credentials.secret_access_key, amz_date.substr(0, 8), region, service);
  return cq + "&X-Amz-Signature=" + to_hex(hmac_sha256(key, sts));
}

}  // namespace hf::storage::sigv4
