// lib/track pieces: CRC-32C and TFRecord framing, HF's TensorBoard tag names, report_to parsing.
#include <doctest/doctest.h>

#include "core/error.h"
#include "track/track.h"

using namespace hf::track;

TEST_CASE("crc32c matches the Castagnoli check values") {
  CHECK(crc32c("") == 0u);
  CHECK(crc32c("123456789") == 0xe3069283u);  // RFC 3720 / iSCSI check value
  CHECK(crc32c(std::string(32, '\0')) == 0x8a9136aau);
}

TEST_CASE("tfrecord frames length, masked CRCs and data") {
  const std::string r = tfrecord("abc");
  REQUIRE(r.size() == 8 + 4 + 3 + 4);
  CHECK(static_cast<unsigned char>(r[0]) == 3);
  CHECK(r.substr(1, 7) == std::string(7, '\0'));
  CHECK(r.substr(12, 3) == "abc");
  const std::uint32_t c = crc32c("abc");
  const std::uint32_t masked = ((c >> 15) | (c << 17)) + 0xa282ead8u;
  CHECK(masked_crc32c("abc") == masked);
  std::uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= static_cast<std::uint32_t>(static_cast<unsigned char>(r[15 + i])) << (8 * i);
  CHECK(stored == masked);
}

TEST_CASE("tensorboard tags follow HF rewrite_logs") {
  CHECK(tensorboard_tag("loss") == "train/loss");
  CHECK(tensorboard_tag("learning_rate") == "train/learning_rate");
  CHECK(tensorboard_tag("eval_accuracy") == "eval/accuracy");
  CHECK(tensorboard_tag("test_f1") == "test/f1");
  CHECK(tensorboard_tag("train_runtime") == "train/train_runtime");
}

TEST_CASE("report_to parsing") {
  using V = std::vector<std::string>;
  CHECK(parse_report_to({"none"}).empty());
  CHECK(parse_report_to({}).empty());
  CHECK(parse_report_to({"tensorboard"}) == V{"tensorboard"});
  CHECK(parse_report_to({"mlflow,tensorboard"}) == V{"mlflow", "tensorboard"});
  CHECK(parse_report_to({"all"}) == V{"mlflow", "tensorboard"});
  CHECK(parse_report_to({"tensorboard", "all"}) == V{"mlflow", "tensorboard"});
  CHECK_THROWS_AS(parse_report_to({"wandb"}), hf::Error);
  CHECK_THROWS_AS(parse_report_to({"none,mlflow"}), hf::Error);
}
