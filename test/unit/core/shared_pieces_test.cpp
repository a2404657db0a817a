// The small shared pieces of lib/core: UniqueFd, env(), Digest/hex, Backoff, Cancelled.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "core/backoff.h"
#include "core/cancel.h"
#include "core/digest.h"
#include "core/env.h"
#include "core/error.h"
#include "core/fd.h"

namespace {

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST_CASE("UniqueFd closes its fd once, and moves hand ownership over") {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(raw >= 0);
  {
    hf::UniqueFd a(raw);
    hf::UniqueFd b(std::move(a));
    CHECK(!a.valid());
    CHECK(b.get() == raw);
    CHECK(fd_open(raw));
  }
  CHECK(!fd_open(raw));
  int kept = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  {
    hf::UniqueFd c(kept);
    CHECK(c.release() == kept);
  }
  CHECK(fd_open(kept));
  ::close(kept);
}

TEST_CASE("env() treats unset and empty alike") {
  ::setenv("HFKIT_TEST_ENV_VALUE", "x y", 1);
  ::setenv("HFKIT_TEST_ENV_EMPTY", "", 1);
  ::unsetenv("HFKIT_TEST_ENV_UNSET");
  CHECK(hf::env("HFKIT_TEST_ENV_VALUE") == std::optional<std::string>("x y"));
  CHECK(!hf::env("HFKIT_TEST_ENV_EMPTY"));
  CHECK(!hf::env("HFKIT_TEST_ENV_UNSET"));
}

TEST_CASE("Digest gives the published test vectors, streaming or one-shot") {
  // FIPS 180-2 and RFC 1321 "abc" vectors.
  CHECK(hf::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hf::Md5 md5;
  md5.update("a", 1);
  md5.update("bc");
  CHECK(md5.hex_digest() == "900150983cd24fb0d6963f7d28e17f72");
  hf::Sha256 moved_from;
  moved_from.update("ab");
  hf::Sha256 sha = std::move(moved_from);
  sha.update("c");
  CHECK(hf::to_hex(sha.raw_digest()) == hf::sha256_hex("abc"));
  CHECK_THROWS_AS(moved_from.update("x"), hf::Error);
}

TEST_CASE("hex round-trips and rejects malformed input") {
  CHECK(hf::to_hex(std::string("\x00\xff\x10", 3)) == "00ff10");
  CHECK(hf::from_hex("00FF10") == std::string("\x00\xff\x10", 3));
  for (const char* bad : {"0", "0g", "zz"}) {
    CAPTURE(bad);
    try {
      hf::from_hex(bad);
      FAIL("accepted");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kDataErr);
    }
  }
}

TEST_CASE("Backoff doubles up to its cap, jitter stays below the attempt's cap") {
  hf::Backoff fixed{0.5, 3.0, false};
  CHECK(fixed.delay_s(0) == doctest::Approx(0.5));
  CHECK(fixed.delay_s(1) == doctest::Approx(1.0));
  CHECK(fixed.delay_s(2) == doctest::Approx(2.0));
  CHECK(fixed.delay_s(3) == doctest::Approx(3.0));
  CHECK(fixed.delay_s(500) == doctest::Approx(3.0));
  hf::Backoff jittered{0.5, 3.0, true};
  for (int i = 0; i < 200; ++i) {
    double d = jittered.delay_s(i % 4);
    CHECK(d >= 0.0);
    CHECK(d <= fixed.delay_s(i % 4));
  }
}

TEST_CASE("sleep_unless returns early when asked to stop") {
  auto t0 = std::chrono::steady_clock::now();
  int asked = 0;
  CHECK(!hf::sleep_unless(10.0, [&] { return ++asked >= 3; }));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  CHECK(hf::sleep_unless(0.01));
}

TEST_CASE("Cancelled is a kTempFail Error callers can catch by type") {
  try {
    std::atomic<bool> flag{false};
    hf::throw_if_cancelled(&flag);
    hf::throw_if_cancelled(nullptr);
    flag = true;
    hf::throw_if_cancelled(&flag);
    FAIL("not thrown");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kTempFail);
    CHECK(dynamic_cast<const hf::Cancelled*>(&e) != nullptr);
  }
}
