// AWS Signature Version 4 for S3: canonical request, string to sign, signing key, the
// Authorization header and presigned (query-string) URLs. Spec:
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html and
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
// S3 rules apply: paths are URI-encoded once and never normalized. Internal to lib/storage.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::storage::sigv4 {

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;  // never logged
  std::string session_token;      // "" for long-term keys; never logged
};

// What SigV4 covers of an HTTP request.
struct Request {
  std::string method;
  std::string host;  // as sent in Host: "examplebucket.s3.amazonaws.com", "127.0.0.1:5000"
  std::string path;  // decoded, starting with '/': "/bucket/a b.txt"
  Pairs query;       // decoded names and values; a flag like "?uploads" is {"uploads", ""}
  Pairs headers;     // headers to sign besides host/x-amz-date/x-amz-content-sha256 (any case)
};

inline constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr const char* kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// RFC 3986 encoding as SigV4 defines it: unreserved A-Z a-z 0-9 - _ . ~ kept, '/' kept when
// keep_slash, every other byte %XX (upper-case hex).
std::string uri_encode(std::string_view s, bool keep_slash);
// Sorted "k=v&k2=v2" of the encoded pairs.
std::string canonical_query(const Pairs& query);
// "20130524T000000Z"
std::string amz_date(std::chrono::system_clock::time_point t);

// The canonical request; `signed_headers` receives "host;range;x-amz-date" etc. `headers` must
// hold every header to sign, host included.
std::string canonical_request(std::string_view method, std::string_view path,
                              std::string_view canonical_query_string, const Pairs& headers,
                              std::string_view payload_hash, std::string* signed_headers);
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);
// Raw 32-byte key: HMAC chain over date, region, service, "aws4_request".
std::string signing_key(std::string_view secret, std::string_view date8, std::string_view region,
                        std::string_view service);

// Header-based auth: the headers to add to the request (x-amz-date, x-amz-content-sha256,
// x-amz-security-token when there is a session token, authorization). `payload_hash` is the hex
// SHA-256 of the body or kUnsignedPayload.
Pairs sign_headers(const Request& request, std::string_view payload_hash,
                   const Credentials& credentials, std::string_view region,
                   std::string_view service, std::string_view amz_date);

// Query-string auth: the full encoded query (request.query plus the X-Amz-* parameters and the
// signature) to put after '?'. Only request.headers and host are signed; payload is unsigned.
std::string presign_query(const Request& request, const Credentials& credentials,
                          std::string_view region, std::string_view service,
                          std::string_view amz_date, long expires_s);

}  // namespace hf::storage::sigv4
