// S3 answer classification and response numbers (see s3_response.h).
#include "storage/s3_response.h"

#include <charconv>

#include "storage/xml.h"

namespace hf::storage {
namespace {

constexpr int kCurlPartialFile = 18;              // CURLE_PARTIAL_FILE: body cut short
constexpr int kCurlPeerFailedVerification = 60;   // CURLE_PEER_FAILED_VERIFICATION

Verdict fail(ErrorKind kind, std::string message) {
  Verdict v;
  v.action = Verdict::Action::kFail;
  v.kind = kind;
  v.message = std::move(message);
  return v;
}

Verdict retry(ErrorKind kind, std::string message, bool throttled = false) {
  Verdict v = fail(kind, std::move(message));
  v.action = Verdict::Action::kRetry;
  v.throttled = throttled;
  return v;
}

Verdict transport_failure(const HttpResponse& r, const CallContext& c) {
  std::string what(c.what);
  ErrorKind kind = is_timeout(r.curl_code) || r.curl_code == kCurlPartialFile ? ErrorKind::kTempFail
                                                                              : ErrorKind::kUnavailable;
  std::string msg = what + ": " + r.error;
  if (r.curl_code == kCurlPeerFailedVerification)
    msg += " (TLS certificate not trusted; --no-verify-ssl turns verification off, for testing only)";
  if (is_connect_failure(r.curl_code)) msg = what + ": endpoint " + std::string(c.endpoint) + " unreachable: " + r.error;
  return is_retryable_transport(r.curl_code) ? retry(kind, msg) : fail(kind, msg);
}

Verdict http_failure(const HttpResponse& r, const CallContext& c) {
  std::string what(c.what);
  std::string code = xml::text(r.body, "Code");
  std::string message = xml::text(r.body, "Message");
  long st = r.status;
  std::string detail = what + ": HTTP " + std::to_string(st) + (code.empty() ? "" : " " + code) +
                       (message.empty() ? "" : ": " + message);
  if (code == "ExpiredToken" || code == "TokenRefreshRequired" || code == "RequestExpired") {
    Verdict v = retry(ErrorKind::kNoPerm, detail);
    v.refresh_credentials = true;
    return v;
  }
  if (code == "RequestTimeTooSkewed") {
    Verdict v = retry(ErrorKind::kNoPerm, detail);
    v.clock_skewed = true;
    return v;
  }
  if (st == 401 || st == 403) return fail(ErrorKind::kNoPerm, detail);
  if (st == 404) return fail(ErrorKind::kNoInput, detail);
  if (st == 412) return fail(ErrorKind::kTempFail, what + ": the object changed during the transfer (HTTP 412)");
  if (st == 301 || st == 307 || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed") {
    std::string region = r.header("x-amz-bucket-region");
    return fail(ErrorKind::kConfig,
                detail + (region.empty() ? "" : " (the bucket is in region " + region + "; pass --region " + region + ")"));
  }
  if (st == 429 || code == "SlowDown" || code == "Throttling" || code == "ThrottlingException")
    return retry(ErrorKind::kTempFail, detail, true);
  if (st >= 500 || code == "RequestTimeout" || code == "InternalError")
    return retry(ErrorKind::kTempFail, detail, st == 503);
  if (code == "BadDigest" || code == "InvalidDigest" || code == "XAmzContentSHA256Mismatch")
    return retry(ErrorKind::kIo, detail + " (data changed in transit or the file changed while uploading)");
  return fail(ErrorKind::kDataErr, detail);
}

}  // namespace

Verdict classify(const HttpResponse& r, const CallContext& c) {
  if (r.curl_code == 0 && r.status >= 200 && r.status < 300) {
    if (c.problem.empty()) {
      Verdict v;
      v.action = Verdict::Action::kAccept;
      return v;
    }
    return retry(ErrorKind::kTempFail, std::string(c.what) + ": " + std::string(c.problem));
  }
  if (r.overflow) return retry(ErrorKind::kIo, std::string(c.what) + ": server sent more data than expected");
  if (r.curl_code != 0 && r.status < 300) return transport_failure(r, c);
  if (r.status == 404 && c.allow_404) {
    Verdict v;
    v.action = Verdict::Action::kAccept;
    return v;
  }
  return http_failure(r, c);
}

std::uint64_t parse_count(std::string_view text, std::string_view where, std::string_view field) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end)
    throw Error(ErrorKind::kDataErr, Where{std::string(where), 0, std::string(field)},
                "expected a byte count, got '" + std::string(text.substr(0, 40)) + "'");
  return v;
}

}  // namespace hf::storage
