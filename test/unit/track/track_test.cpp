// lib/track pieces: CRC-32C and TFRecord framing, HF's TensorBoard tag names, report_to parsing,
// the state a run keeps across resumes (tracking.json and its copy in checkpoints).
#include <doctest/doctest.h>

#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "support/temp_dir.h"
#include "track/sinks.h"
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

namespace {

const nlohmann::json kHistory = nlohmann::json::array({{{"step", 5}, {"loss", 0.5}}});  // a resumed run's

Options options(const std::string& report_to, const std::string& output_dir, const std::string& logging_dir = "") {
  Options o;
  o.report_to = {report_to};
  o.output_dir = output_dir;
  o.logging_dir = logging_dir;
  return o;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

}  // namespace

TEST_CASE("the default logging_dir is kept relative, so a copied output dir logs into its own runs/") {
  hf::test::TempDir tmp;
  const std::string first = tmp.file("first"), copy = tmp.file("copy");
  Options o = options("tensorboard", first);
  nlohmann::json saved;
  {
    auto t = open(o, nlohmann::json::array());
    saved = t->state();
    t->finish(first);
  }
  const std::string kept = saved.value("logging_dir", "");
  CHECK(kept.starts_with("runs/"));
  CHECK(hf::read_file(first + "/tracking.json").find("\"" + kept + "\"") != std::string::npos);
  // The checkpoint's state alone (no tracking.json there) brings the same name under the copy.
  o.output_dir = copy;
  open(o, kHistory, saved)->finish(copy);
  CHECK(event_files(copy + "/" + kept).size() == 1);
  CHECK(event_files(first + "/" + kept).size() == 1);  // the original was not written again
}

TEST_CASE("a logging_dir outside the output dir stays absolute") {
  hf::test::TempDir tmp;
  const Options o = options("tensorboard", tmp.file("out"), tmp.file("logs"));
  auto t = open(o, nlohmann::json::array());
  CHECK(t->state().value("logging_dir", "") == tmp.file("logs"));
  t->finish(o.output_dir);
}

TEST_CASE("tracking state: a resume takes the checkpoint's entries over tracking.json, a fresh run neither") {
  hf::test::TempDir tmp;
  const std::string path = tmp.file("tracking.json");
  hf::write_file_atomic(path, R"({"mlflow_run_id": "from-file", "logging_dir": "runs/a"})");
  const nlohmann::json saved = {{"mlflow_run_id", "from-checkpoint"}, {"logging_dir", ""}};
  RunState resumed(path, /*resumed=*/true, saved);
  CHECK(resumed.get("mlflow_run_id") == "from-checkpoint");
  CHECK(resumed.get("logging_dir") == "runs/a");  // an empty entry does not clear the file's
  CHECK(RunState(path, /*resumed=*/true, nlohmann::json::object()).get("mlflow_run_id") == "from-file");
  CHECK(RunState(path, /*resumed=*/false, saved).snapshot() == nlohmann::json::object());
  hf::write_file_atomic(path, R"({"mlflow_run_id": 5, "logging_dir": ["x"]})");  // hand-edited
  CHECK(RunState(path, /*resumed=*/true, nlohmann::json::object()).get("mlflow_run_id").empty());
  CHECK(RunState(path, /*resumed=*/true, nlohmann::json::object()).get("logging_dir").empty());
  // No sink this time: the state goes on to the next checkpoint as it was.
  CHECK(open(options("none", tmp.file("none")), kHistory, saved)->state() ==
        nlohmann::json{{"mlflow_run_id", "from-checkpoint"}});
}
