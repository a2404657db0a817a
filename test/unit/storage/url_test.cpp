// Location parsing: good forms, then errors.
#include <doctest/doctest.h>

#include "core/error.h"
#include "storage/storage.h"

using hf::storage::parse_url;
using hf::storage::Scheme;

TEST_CASE("url: s3 and local forms") {
  auto u = parse_url("s3://bucket/runs/bert/");
  CHECK(u.scheme == Scheme::kS3);
  CHECK(u.bucket == "bucket");
  CHECK(u.prefix == "runs/bert");
  CHECK(u.str() == "s3://bucket/runs/bert");
  CHECK(u.key_for("a/b.txt") == "runs/bert/a/b.txt");
  CHECK(u.key_for("") == "runs/bert");
  CHECK(u.child("checkpoint-5").str() == "s3://bucket/runs/bert/checkpoint-5");

  auto b = parse_url("s3://my-bucket.v2");
  CHECK(b.prefix.empty());
  CHECK(b.key_for("x") == "x");
  CHECK(b.str() == "s3://my-bucket.v2");
  CHECK(parse_url("S3://b/k").scheme == Scheme::kS3);

  auto f = parse_url("file:///mnt/lustre/runs");
  CHECK(f.scheme == Scheme::kLocal);
  CHECK(f.path == "/mnt/lustre/runs");
  CHECK(parse_url("file://localhost/x").path == "/x");
  CHECK(f.child("a").path == "/mnt/lustre/runs/a");

  auto p = parse_url("relative/dir");
  CHECK(p.scheme == Scheme::kLocal);
  CHECK(p.path == "relative/dir");
}

TEST_CASE("url: errors are usage errors") {
  for (const char* bad : {"", "s3://", "s3:///key", "gs://bucket/x", "file://host/x", "file://relative",
                          "s3://bad bucket/x", "s3://bu?cket/x"}) {
    CAPTURE(bad);
    try {
      parse_url(bad);
      FAIL("accepted");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kUsage);
    }
  }
}
