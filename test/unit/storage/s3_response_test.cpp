// S3 answer classification (status, curl code, S3 error code -> accept / retry / ErrorKind) and
// numbers read from answers: good cases, then error cases.
#include <doctest/doctest.h>

#include <string>

#include "core/error.h"
#include "storage/s3_response.h"

using hf::ErrorKind;
using hf::storage::CallContext;
using hf::storage::classify;
using hf::storage::HttpResponse;
using hf::storage::Verdict;
using Action = Verdict::Action;

namespace {

constexpr int kCurlCouldntConnect = 7;   // CURLE_COULDNT_CONNECT
constexpr int kCurlCouldntResolve = 6;   // CURLE_COULDNT_RESOLVE_HOST
constexpr int kCurlTimedOut = 28;        // CURLE_OPERATION_TIMEDOUT
constexpr int kCurlPartialFile = 18;     // CURLE_PARTIAL_FILE
constexpr int kCurlRecvError = 56;       // CURLE_RECV_ERROR
constexpr int kCurlTlsUntrusted = 60;    // CURLE_PEER_FAILED_VERIFICATION

HttpResponse answer(long status, std::string code = "", int curl_code = 0) {
  HttpResponse r;
  r.status = status;
  r.curl_code = curl_code;
  if (curl_code != 0) r.error = "curl says no";
  if (!code.empty()) r.body = "<Error><Code>" + code + "</Code><Message>because</Message></Error>";
  return r;
}

struct Case {
  const char* name;
  HttpResponse response;
  Action action;
  ErrorKind kind;  // ignored when accepted
  bool throttled = false;
};

}  // namespace

TEST_CASE("s3 classify: status, curl code and S3 error code decide retry and exit kind") {
  HttpResponse redirect = answer(301, "PermanentRedirect");
  redirect.headers = {{"x-amz-bucket-region", "eu-west-1"}};
  HttpResponse overflow = answer(200);
  overflow.overflow = true;
  overflow.curl_code = 23;  // CURLE_WRITE_ERROR: our write callback refused the excess
  const Case cases[] = {
      {"200", answer(200), Action::kAccept, ErrorKind::kInternal},
      {"206", answer(206), Action::kAccept, ErrorKind::kInternal},
      {"204 delete", answer(204), Action::kAccept, ErrorKind::kInternal},
      {"301 redirect", redirect, Action::kFail, ErrorKind::kConfig},
      {"307", answer(307), Action::kFail, ErrorKind::kConfig},
      {"400 AuthorizationHeaderMalformed", answer(400, "AuthorizationHeaderMalformed"), Action::kFail, ErrorKind::kConfig},
      {"400 InvalidArgument", answer(400, "InvalidArgument"), Action::kFail, ErrorKind::kDataErr},
      {"400 RequestTimeout", answer(400, "RequestTimeout"), Action::kRetry, ErrorKind::kTempFail},
      {"400 BadDigest", answer(400, "BadDigest"), Action::kRetry, ErrorKind::kIo},
      {"400 ExpiredToken", answer(400, "ExpiredToken"), Action::kRetry, ErrorKind::kNoPerm},
      {"401", answer(401), Action::kFail, ErrorKind::kNoPerm},
      {"403 AccessDenied", answer(403, "AccessDenied"), Action::kFail, ErrorKind::kNoPerm},
      {"403 RequestTimeTooSkewed", answer(403, "RequestTimeTooSkewed"), Action::kRetry, ErrorKind::kNoPerm},
      {"404 NoSuchKey", answer(404, "NoSuchKey"), Action::kFail, ErrorKind::kNoInput},
      {"409 BucketNotEmpty", answer(409, "BucketNotEmpty"), Action::kFail, ErrorKind::kDataErr},
      {"412 PreconditionFailed", answer(412, "PreconditionFailed"), Action::kFail, ErrorKind::kTempFail},
      {"416 InvalidRange", answer(416, "InvalidRange"), Action::kFail, ErrorKind::kDataErr},
      {"429", answer(429), Action::kRetry, ErrorKind::kTempFail, true},
      {"503 SlowDown", answer(503, "SlowDown"), Action::kRetry, ErrorKind::kTempFail, true},
      {"400 Throttling", answer(400, "Throttling"), Action::kRetry, ErrorKind::kTempFail, true},
      {"500 InternalError", answer(500, "InternalError"), Action::kRetry, ErrorKind::kTempFail, false},
      {"502 no body", answer(502), Action::kRetry, ErrorKind::kTempFail, false},
      {"curl timeout", answer(0, "", kCurlTimedOut), Action::kRetry, ErrorKind::kTempFail},
      {"curl connect refused", answer(0, "", kCurlCouldntConnect), Action::kRetry, ErrorKind::kUnavailable},
      {"curl DNS", answer(0, "", kCurlCouldntResolve), Action::kRetry, ErrorKind::kUnavailable},
      {"curl reset mid-body of a 200", answer(200, "", kCurlRecvError), Action::kRetry, ErrorKind::kUnavailable},
      {"curl partial file", answer(200, "", kCurlPartialFile), Action::kRetry, ErrorKind::kTempFail},
      {"curl TLS untrusted", answer(0, "", kCurlTlsUntrusted), Action::kFail, ErrorKind::kUnavailable},
      {"more bytes than asked", overflow, Action::kRetry, ErrorKind::kIo},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Verdict v = classify(c.response, CallContext{"GET s3://b/k", "127.0.0.1:9000", false, ""});
    CHECK(v.action == c.action);
    if (c.action == Action::kAccept) continue;
    CHECK(v.kind == c.kind);
    CHECK(v.throttled == c.throttled);
    CHECK(v.message.rfind("GET s3://b/k: ", 0) == 0);
  }
}

TEST_CASE("s3 classify: side effects and messages are reported, not performed") {
  CallContext ctx{"HEAD s3://b/k", "store:9000", false, ""};
  CHECK(classify(answer(400, "ExpiredToken"), ctx).refresh_credentials);
  CHECK(!classify(answer(403, "AccessDenied"), ctx).refresh_credentials);
  CHECK(classify(answer(403, "RequestTimeTooSkewed"), ctx).clock_skewed);

  HttpResponse redirect = answer(301, "PermanentRedirect");
  redirect.headers = {{"x-amz-bucket-region", "eu-west-1"}};
  CHECK(classify(redirect, ctx).message.find("pass --region eu-west-1") != std::string::npos);
  CHECK(classify(answer(0, "", kCurlCouldntConnect), ctx).message ==
        "HEAD s3://b/k: endpoint store:9000 unreachable: curl says no");
  CHECK(classify(answer(0, "", kCurlTlsUntrusted), ctx).message.find("--no-verify-ssl") != std::string::npos);
  CHECK(classify(answer(404, "NoSuchKey"), ctx).message == "HEAD s3://b/k: HTTP 404 NoSuchKey: because");
}

TEST_CASE("s3 classify: a 404 can be an answer, a bad 2xx is retried") {
  CallContext may_be_missing{"HEAD s3://b/k", "h", true, ""};
  CHECK(classify(answer(404), may_be_missing).action == Action::kAccept);
  CHECK(classify(answer(403), may_be_missing).action == Action::kFail);
  CallContext short_body{"GET s3://b/k", "h", false, "got 3 of 10 bytes"};
  Verdict v = classify(answer(200), short_body);
  CHECK(v.action == Action::kRetry);
  CHECK(v.kind == ErrorKind::kTempFail);
  CHECK(v.message == "GET s3://b/k: got 3 of 10 bytes");
}

TEST_CASE("s3 response numbers: plain 64-bit counts, anything else a data error naming the field") {
  using hf::storage::parse_count;
  CHECK(parse_count("0", "u", "Size") == 0);
  CHECK(parse_count("18446744073709551615", "u", "Size") == 18446744073709551615ull);
  for (const char* bad : {"", "-1", "+5", " 5", "5 ", "1e3", "0x10", "18446744073709551616", "12abc"}) {
    CAPTURE(bad);
    try {
      parse_count(bad, "list s3://b/p", "Size");
      FAIL("accepted");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == ErrorKind::kDataErr);
      CHECK(std::string(e.what()).rfind("list s3://b/p: field \"Size\": expected a byte count", 0) == 0);
    }
  }
}
