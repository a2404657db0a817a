// Run tracking for hf-train (HF Trainer's `report_to`): every log_history record goes to the chosen
// sinks — TensorBoard event files written directly, an MLflow tracking server over its REST API.
// Sinks never fail training on their own account after start-up: MLflow works from a background
// thread with a bounded queue. Tag and metric names follow HF's TensorBoardCallback/MLflowCallback.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::track {

struct Options {
  // Sink names: "none", "tensorboard", "mlflow", "all"; entries may hold comma-separated lists.
  std::vector<std::string> report_to;
  std::string output_dir;   // training output directory: holds tracking.json (state kept across resumes)
  std::string logging_dir;  // TensorBoard directory; "" = output_dir/runs/<Mon>DD_HH-MM-SS_<host> (HF's)
  std::string run_name;     // MLflow run name; "" = the output directory's name
  std::string config_yaml;  // resolved config (flat YAML of HF names): text summary and MLflow params
  std::vector<std::pair<std::string, std::string>> tags;  // MLflow run tags (hfkit version, commit, data)
};

// Receives log_history records. Not thread-safe: one training loop calls it.
class Tracker {
 public:
  virtual ~Tracker() = default;
  // One log_history record ({"step": N, name: number, ...}); non-numeric fields are skipped.
  virtual void log(const nlohmann::json& record) = 0;
  // Training ended with the final model in `model_dir`: upload it, close the run. Waits a bounded
  // time for a slow or unreachable server, then reports what was dropped. Never throws.
  virtual void finish(const std::string& model_dir) = 0;
  // What a checkpoint keeps so that a resume, here or from a copy elsewhere, continues the same
  // runs (the logging_dir, the MLflow run id); pass it back to open(). Thread-safe.
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
};

// The sink names of `report_to` ("all" expands, "none" alone means none). Throws Error(kUsage) for
// an unknown name or "none" mixed with others.
std::vector<std::string> parse_report_to(const std::vector<std::string>& report_to);

// Opens the sinks. `history` is the log_history the run starts from (empty when fresh, the
// checkpoint's on resume): sinks restart from it, so a resumed run shows each step once. A resumed
// run keeps its logging_dir and its MLflow run: from `saved` (state() as the checkpoint kept it),
// else output_dir/tracking.json. Throws
// Error(kUsage/kConfig) for bad options (mlflow without an http(s) MLFLOW_TRACKING_URI),
// Error(kCantCreate/kIo) when the event file cannot be written. Returns a no-op tracker for none.
std::unique_ptr<Tracker> open(const Options& options, const nlohmann::json& history,
                              const nlohmann::json& saved = nlohmann::json::object());

// ---- Pieces, public for tests ----

// HF's rewrite_logs: "eval_x" -> "eval/x", "test_x" -> "test/x", anything else -> "train/x".
std::string tensorboard_tag(std::string_view key);
// CRC-32C (Castagnoli) of `data`, and TFRecord's mask of it.
std::uint32_t crc32c(std::string_view data);
std::uint32_t masked_crc32c(std::string_view data);
// One TFRecord: u64 length, masked CRC of the length, data, masked CRC of the data (little-endian).
std::string tfrecord(std::string_view data);

}  // namespace hf::track
