// Internal to lib/track: the sinks behind Tracker and the state a run keeps across resumes.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <string>

#include "track/track.h"

namespace hf::track {

// output_dir/tracking.json: {"logging_dir", "mlflow_run_id"}, read on resume, rewritten atomically
// on change; a copy travels in every checkpoint (Tracker::state). logging_dir is kept relative to
// output_dir when inside it, so a copied or pulled output directory logs into its own runs/.
// Thread-safe (the MLflow thread stores the run id).
class RunState {
 public:
  // Reads the file when `resumed`, then takes every non-empty entry of `saved` (the checkpoint's
  // copy, which also reaches a resume on another machine) over it; a fresh run starts empty.
  RunState(std::string path, bool resumed, const nlohmann::json& saved);
  std::string get(const std::string& key) const;
  void set(const std::string& key, const std::string& value);
  nlohmann::json snapshot() const;

 private:
  std::string path_;
  mutable std::mutex mutex_;
  nlohmann::json state_ = nlohmann::json::object();
};

std::unique_ptr<Tracker> make_tensorboard(const std::string& dir, const std::string& config_yaml,
                                          const nlohmann::json& history);
std::unique_ptr<Tracker> make_mlflow(const Options& options, std::shared_ptr<RunState> state,
                                     const nlohmann::json& history);

}  // namespace hf::track
