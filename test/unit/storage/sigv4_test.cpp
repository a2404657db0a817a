// SigV4 against the worked examples AWS publishes for S3 (header auth:
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, query auth:
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html). The expected
// signatures are AWS's, not ours. A botocore cross-check of live requests is in test/s3.
#include <doctest/doctest.h>

#include "storage/crypto.h"
#include "storage/sigv4.h"

namespace sigv4 = hf::storage::sigv4;

namespace {

const sigv4::Credentials kAwsExample{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr const char* kDate = "20130524T000000Z";
constexpr const char* kHost = "examplebucket.s3.amazonaws.com";

std::string header(const sigv4::Pairs& h, const std::string& name) {
  for (const auto& [k, v] : h)
    if (k == name) return v;
  return "";
}

std::string signature_of(const std::string& authorization) {
  return authorization.substr(authorization.find("Signature=") + 10);
}

}  // namespace

TEST_CASE("sigv4: AWS example GET object with Range") {
  sigv4::Request r{"GET", kHost, "/test.txt", {}, {{"Range", "bytes=0-9"}}};
  std::string signed_headers;
  sigv4::Pairs all = {{"host", kHost}, {"range", "bytes=0-9"}, {"x-amz-content-sha256", sigv4::kEmptySha256},
                      {"x-amz-date", kDate}};
  std::string creq = sigv4::canonical_request("GET", "/test.txt", "", all, sigv4::kEmptySha256, &signed_headers);
  CHECK(signed_headers == "host;range;x-amz-content-sha256;x-amz-date");
  CHECK(hf::to_hex(hf::storage::sha256_raw(creq)) ==
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  auto added = sigv4::sign_headers(r, sigv4::kEmptySha256, kAwsExample, "us-east-1", "s3", kDate);
  CHECK(header(added, "authorization") ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  CHECK(header(added, "x-amz-date") == kDate);
  CHECK(header(added, "x-amz-security-token").empty());
}

TEST_CASE("sigv4: AWS example PUT object (encoded key, Date and storage-class headers)") {
  std::string body = "Welcome to Amazon S3.";
  std::string hash = hf::to_hex(hf::storage::sha256_raw(body));
  CHECK(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  sigv4::Request r{"PUT", kHost, "/test$file.text", {},
                   {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}}};
  auto added = sigv4::sign_headers(r, hash, kAwsExample, "us-east-1", "s3", kDate);
  std::string auth = header(added, "authorization");
  CHECK(auth.find("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,") != std::string::npos);
  CHECK(signature_of(auth) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST_CASE("sigv4: AWS example GET bucket lifecycle (valueless query parameter)") {
  sigv4::Request r{"GET", kHost, "/", {{"lifecycle", ""}}, {}};
  auto added = sigv4::sign_headers(r, sigv4::kEmptySha256, kAwsExample, "us-east-1", "s3", kDate);
  CHECK(signature_of(header(added, "authorization")) ==
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST_CASE("sigv4: AWS example list objects (query sorted)") {
  sigv4::Request r{"GET", kHost, "/", {{"prefix", "J"}, {"max-keys", "2"}}, {}};
  CHECK(sigv4::canonical_query(r.query) == "max-keys=2&prefix=J");
  auto added = sigv4::sign_headers(r, sigv4::kEmptySha256, kAwsExample, "us-east-1", "s3", kDate);
  CHECK(signature_of(header(added, "authorization")) ==
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("sigv4: AWS example presigned URL") {
  sigv4::Request r{"GET", kHost, "/test.txt", {}, {}};
  std::string q = sigv4::presign_query(r, kAwsExample, "us-east-1", "s3", kDate, 86400);
  CHECK(q ==
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_"
        "request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST_CASE("sigv4: session token is signed and sent") {
  sigv4::Credentials c = kAwsExample;
  c.session_token = "TOKEN/+=";
  sigv4::Request r{"GET", kHost, "/test.txt", {}, {}};
  auto with = sigv4::sign_headers(r, sigv4::kEmptySha256, c, "us-east-1", "s3", kDate);
  auto without = sigv4::sign_headers(r, sigv4::kEmptySha256, kAwsExample, "us-east-1", "s3", kDate);
  CHECK(header(with, "x-amz-security-token") == "TOKEN/+=");
  CHECK(header(with, "authorization").find("x-amz-security-token") != std::string::npos);
  CHECK(signature_of(header(with, "authorization")) != signature_of(header(without, "authorization")));
  std::string q = sigv4::presign_query(r, c, "us-east-1", "s3", kDate, 60);
  CHECK(q.find("X-Amz-Security-Token=TOKEN%2F%2B%3D") != std::string::npos);
}

TEST_CASE("sigv4: URI encoding") {
  struct Case {
    const char* in;
    bool keep_slash;
    const char* out;
  };
  const Case cases[] = {
      {"a b", true, "a%20b"},       {"a+b", true, "a%2Bb"},          {"100%", true, "100%25"},
      {"a/b", true, "a/b"},         {"a/b", false, "a%2Fb"},         {"A-z_0.9~", false, "A-z_0.9~"},
      {"=&?#", false, "%3D%26%3F%23"}, {"\xc3\xa9", true, "%C3%A9"}, {"test$file", true, "test%24file"},
  };
  for (const auto& c : cases) CHECK(sigv4::uri_encode(c.in, c.keep_slash) == c.out);
}

TEST_CASE("sigv4: header values are trimmed and inner spaces collapsed") {
  std::string signed_headers;
  std::string a = sigv4::canonical_request("GET", "/", "", {{"Host", "h"}, {"X-Amz-Meta-A", "  a   b  "}}, "x",
                                           &signed_headers);
  CHECK(a.find("x-amz-meta-a:a b\n") != std::string::npos);
  CHECK(signed_headers == "host;x-amz-meta-a");
}
