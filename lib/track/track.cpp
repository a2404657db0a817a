// report_to parsing, the state a run keeps across resumes, and the tracker that fans records out
// to the chosen sinks.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "track/sinks.h"

namespace hf::track {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::string> kSinks = {"tensorboard", "mlflow"};  // what "all" means

// Also measures what logging costs the training loop (bench/track_bench.py reads the line).
class Fanout final : public Tracker {
 public:
  Fanout(std::vector<std::unique_ptr<Tracker>> sinks, std::shared_ptr<RunState> state)
      : sinks_(std::move(sinks)), state_(std::move(state)) {}
  void log(const json& rec) override {
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& s : sinks_) s->log(rec);
    in_loop_ += std::chrono::steady_clock::now() - t0;
    ++records_;
  }
  void finish(const std::string& model_dir) override {
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& s : sinks_) s->finish(model_dir);
    if (!sinks_.empty())
      log::info("tracking: {} records cost the training loop {:.3f} ms; finishing took {:.3f} ms", records_,
                std::chrono::duration<double, std::milli>(in_loop_).count(),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  json state() const override { return state_->snapshot(); }

 private:
  std::vector<std::unique_ptr<Tracker>> sinks_;
  std::shared_ptr<RunState> state_;
  std::chrono::steady_clock::duration in_loop_{};
  std::int64_t records_ = 0;
};

// HF's default logging_dir: runs/<%b%d_%H-%M-%S>_<hostname>.
std::string default_logging_dir(const std::string& output_dir) {
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[64];
  std::strftime(stamp, sizeof stamp, "%b%d_%H-%M-%S", &tm);
  return (fs::path(output_dir) / "runs" / fmt::format("{}_{}", stamp, host)).string();
}

// `path` relative to `base` when it lies inside it, else as given: what tracking.json keeps.
std::string relative_to(const std::string& path, const std::string& base) {
  std::error_code ec;
  const fs::path rel = fs::absolute(path, ec).lexically_normal().lexically_relative(fs::absolute(base, ec).lexically_normal());
  if (ec || rel.empty() || *rel.begin() == "..") return path;
  return rel.string();
}

}  // namespace

RunState::RunState(std::string path, bool resumed, const json& saved) : path_(std::move(path)) {
  if (!resumed) return;
  if (fs::exists(path_)) {
    try {
      json j = json::parse(read_file(path_));
      if (j.is_object()) state_ = std::move(j);
    } catch (const std::exception& e) {
      log::warn("{}: {}: starting new tracking runs", path_, e.what());
    }
  }
  if (!saved.is_object()) return;
  for (const auto& [key, value] : saved.items())
    if (value.is_string() && !value.get<std::string>().empty()) state_[key] = value;
}

json RunState::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

std::string RunState::get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = state_.find(key);  // a hand-edited file may hold anything
  return it != state_.end() && it->is_string() ? it->get<std::string>() : "";
}

void RunState::set(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_[key] = value;
  write_file_atomic(path_, state_.dump(2) + "\n");
}

std::vector<std::string> parse_report_to(const std::vector<std::string>& report_to) {
  std::vector<std::string> names;
  bool none = false;
  for (const std::string& entry : report_to) {
    std::size_t start = 0;
    while (start <= entry.size()) {
      std::size_t end = entry.find(',', start);
      if (end == std::string::npos) end = entry.size();
      std::string name = entry.substr(start, end - start);
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t") + 1);
      start = end + 1;
      if (name.empty()) continue;
      if (name == "none") {
        none = true;
      } else if (name == "all") {
        names.insert(names.end(), kSinks.begin(), kSinks.end());
      } else if (std::find(kSinks.begin(), kSinks.end(), name) != kSinks.end()) {
        names.push_back(name);
      } else {
        throw Error(ErrorKind::kUsage, fmt::format("--report-to: unknown '{}' (none, tensorboard, mlflow, all)", name));
      }
    }
  }
  if (none && !names.empty()) throw Error(ErrorKind::kUsage, "--report-to: 'none' cannot be combined with others");
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::unique_ptr<Tracker> open(const Options& o, const json& history, const json& saved) {
  const std::vector<std::string> names = parse_report_to(o.report_to);
  std::vector<std::unique_ptr<Tracker>> sinks;
  // Also without sinks: a resume with --report-to none keeps the runs for a later resume with them.
  auto state = std::make_shared<RunState>((fs::path(o.output_dir) / "tracking.json").string(), !history.empty(), saved);
  if (!names.empty()) {
    make_dirs(o.output_dir);
    for (const std::string& name : names) {
      if (name == "tensorboard") {
        std::string dir = o.logging_dir;
        if (dir.empty()) {  // a kept relative name is under output_dir, wherever that is now
          const std::string kept = state->get("logging_dir");
          dir = kept.empty() ? default_logging_dir(o.output_dir) : (fs::path(o.output_dir) / kept).string();
        }
        state->set("logging_dir", relative_to(dir, o.output_dir));
        sinks.push_back(make_tensorboard(dir, o.config_yaml, history));
        log::info("tensorboard: event files in {}", dir);
      } else if (name == "mlflow") {
        sinks.push_back(make_mlflow(o, state, history));
      }
    }
  }
  return std::make_unique<Fanout>(std::move(sinks), std::move(state));
}

}  // namespace hf::track
