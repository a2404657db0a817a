// MLflow sink over the tracking server's REST API (https://mlflow.org/docs/latest/rest-api.html):
// experiment and run set-up, params, metrics in log-batch requests, and at the end the model
// directory as artifacts (mlflow-artifacts: proxied upload, or a copy for file: artifact URIs) and
// the run marked FINISHED. Everything talks to the server from one background thread; the training
// loop only queues (bounded). Uses lib/storage's HttpClient (pooled libcurl handles, timeouts).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "core/backoff.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "storage/crypto.h"
#include "storage/http.h"
#include "storage/sigv4.h"
#include "storage/storage.h"
#include "track/sinks.h"

namespace hf::track {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxQueued = 100000;     // metric values held while the server is away
constexpr std::size_t kMetricsPerBatch = 1000; // MLflow's log-batch limit
constexpr std::size_t kParamsPerBatch = 100;   // MLflow's log-batch limit for params
constexpr std::size_t kMaxParamLength = 500;   // longer values are left out, as HF's callback does
constexpr Backoff kRetryBackoff{0.5, 30.0, false};  // seconds: first delay, doubled per failure, at most
constexpr auto kFinishWait = std::chrono::seconds(120);  // finish() waits at most this, then cancels

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The resolved config as MLflow params: scalars as they are, lists joined with ','.
std::vector<std::pair<std::string, std::string>> params_of(const std::string& config_yaml) {
  std::vector<std::pair<std::string, std::string>> out;
  YAML::Node root;
  try {
    root = YAML::Load(config_yaml);
  } catch (const YAML::Exception&) {
    return out;
  }
  if (!root.IsMap()) return out;
  for (const auto& kv : root) {
    std::string value;
    if (kv.second.IsSequence()) {
      for (const auto& e : kv.second) value += (value.empty() ? "" : ",") + e.as<std::string>();
    } else if (kv.second.IsScalar()) {
      value = kv.second.as<std::string>();
    }
    if (value.size() <= kMaxParamLength) out.emplace_back(kv.first.as<std::string>(), value);
  }
  return out;
}

// Readers for server answers that may be garbage: nullptr / "" / nullopt when not as expected.
const json* find_object(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(key);
  return it != j.end() && it->is_object() ? &*it : nullptr;
}
std::string string_at(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
// MLflow writes int64 fields as numbers, proto3's JSON mapping as strings: take both.
std::optional<std::int64_t> int_at(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return std::int64_t{0};  // proto3 leaves a zero out
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_string()) {
    try {
      std::size_t used = 0;
      const std::int64_t v = std::stoll(it->get<std::string>(), &used);
      if (used == it->get<std::string>().size()) return v;
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

class Mlflow final : public Tracker {
 public:
  Mlflow(const Options& o, std::shared_ptr<RunState> state, const json& history)
      : http_(storage::HttpSettings{.verify_ssl = true, .connect_timeout_s = 5, .read_timeout_s = 30, .cancel = &cancel_}),
        uri_(env("MLFLOW_TRACKING_URI")),
        state_(std::move(state)),
        run_name_(o.run_name.empty() ? fs::path(o.output_dir).lexically_normal().filename().string() : o.run_name),
        tags_(o.tags),
        params_(params_of(o.config_yaml)),
        history_(history),
        resumed_(!history.empty()) {
    if (!uri_.starts_with("http://") && !uri_.starts_with("https://"))
      throw Error(ErrorKind::kConfig, "--report-to mlflow: set MLFLOW_TRACKING_URI to the tracking server's http(s):// URL");
    while (uri_.ends_with('/')) uri_.pop_back();
    where_ = storage::redact_url(uri_);
    if (const std::string token = env("MLFLOW_TRACKING_TOKEN"); !token.empty()) {
      auth_ = "Bearer " + token;
    } else if (const std::string user = env("MLFLOW_TRACKING_USERNAME"); !user.empty()) {
      auth_ = "Basic " + storage::base64_encode(user + ":" + env("MLFLOW_TRACKING_PASSWORD"));
    }
    run_id_ = env("MLFLOW_RUN_ID");
    if (run_id_.empty()) run_id_ = state_->get("mlflow_run_id");
    worker_ = std::thread([this] { work(); });
  }
  ~Mlflow() override { stop(""); }
  Mlflow(const Mlflow&) = delete;
  Mlflow& operator=(const Mlflow&) = delete;

  // Wakes the thread only when it waits for values: waking it in its back-off wait (server away)
  // bought nothing and cost the loop a context switch per record (bench/track_bench.py saw ~8%).
  void log(const json& rec) override {
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      enqueue(rec);
      wake = idle_;
    }
    if (wake) cv_.notify_one();
  }
  void finish(const std::string& model_dir) override { stop(model_dir); }

 private:
  // A metric the continued run already holds: a step at or before the newest one it has of that
  // key. (A key logged twice at one step, epoch beside an eval, keeps the first only if a kill fell
  // between the two.)
  bool already_logged(const json& metric) const {
    const auto it = logged_.find(metric["key"].get<std::string>());
    return it != logged_.end() && metric["step"].get<std::int64_t>() <= it->second;
  }

  void enqueue(const json& rec) {
    const std::int64_t step = rec.value("step", std::int64_t{0}), t = now_ms();
    for (const auto& [key, value] : rec.items()) {
      if (key == "step" || !value.is_number()) continue;
      if (queue_.size() >= kMaxQueued) {
        queue_.pop_front();
        ++dropped_;
      }
      queue_.push_back({{"key", key}, {"value", value.get<double>()}, {"timestamp", t}, {"step", step}});
    }
  }

  // Ends the thread: the queue is sent (one last attempt each when the server is failing), then
  // with a model directory the artifacts go up and the run is FINISHED. Bounded by kFinishWait.
  void stop(const std::string& model_dir) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!worker_.joinable()) return;
      finishing_ = true;
      model_dir_ = model_dir;
      cv_.notify_one();
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!cv_.wait_for(lock, kFinishWait, [this] { return done_; })) {
        cancel_ = true;
        cv_.notify_all();
        log::warn("mlflow: {} too slow: giving up", where_);
      }
    }
    worker_.join();
    if (dropped_ > 0)
      log::warn("mlflow: {} metric value(s) could not be sent to {} and were dropped", dropped_, where_);
  }

  storage::HttpResponse call(const std::string& method, const std::string& path, const std::string& body,
                             int fd = -1, std::uint64_t size = 0) {
    storage::HttpRequest r;
    r.method = method;
    r.url = uri_ + path;
    if (!auth_.empty()) r.headers.emplace_back("Authorization", auth_);
    if (fd >= 0) {
      r.headers.emplace_back("Content-Type", "application/octet-stream");
      r.body_fd = fd;
      r.body_size = size;
    } else {
      if (method != "GET") r.headers.emplace_back("Content-Type", "application/json");
      r.body = body;
    }
    return http_.perform(r);
  }

  // One request, retried with back-off while the failure is transient. Returns the response when
  // it got an answer that is not worth retrying (ok or a 4xx), nullopt when it gave up (finishing
  // and the server still failing, or cancelled).
  std::optional<storage::HttpResponse> request(const std::string& method, const std::string& path,
                                               const std::string& body, const std::string& file = "") {
    for (int attempt = 0;; ++attempt) {
      storage::HttpResponse r;
      if (file.empty()) {
        r = call(method, path, body);
      } else {
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0) {
          if (fd >= 0) ::close(fd);
          log::warn("mlflow: cannot read {}: not uploaded", file);
          return std::nullopt;
        }
        r = call(method, path, "", fd, static_cast<std::uint64_t>(st.st_size));
        ::close(fd);
      }
      const bool transient = r.curl_code != 0 || r.status == 429 || r.status >= 500;
      if (!transient) {
        if (failing_) log::info("mlflow: {} reachable again", where_);
        failing_ = false;
        return r;
      }
      if (!warned_) {
        warned_ = true;
        log::warn("mlflow: {} unreachable ({}): retrying in the background, training goes on", where_,
                  r.curl_code ? r.error : fmt::format("HTTP {}", r.status));
      }
      std::unique_lock<std::mutex> lock(mutex_);
      // Finishing: a failing server gets one attempt per request, no more waiting.
      if (cancel_ || (finishing_ && failing_)) return std::nullopt;
      failing_ = true;
      cv_.wait_for(lock, std::chrono::duration<double>(kRetryBackoff.delay_s(attempt)),
                   [this] { return finishing_ || cancel_.load(); });
    }
  }

  // POST a JSON body; the parsed answer, or nullopt (given up, or refused or answered with
  // something else than a JSON object: then said here, once per path so a log-batch refused at
  // every step does not flood stderr).
  std::optional<json> post(const std::string& path, const json& body) {
    auto r = request("POST", path, body.dump());
    if (!r) return std::nullopt;
    json answer = r->ok() ? json::parse(r->body, nullptr, /*allow_exceptions=*/false) : json();
    if (!answer.is_object()) {
      if (refused_paths_.insert(path).second)
        log::warn("mlflow: POST {}: {}: {}", path, r->ok() ? "the answer is not a JSON object" : fmt::format("HTTP {}", r->status),
                  storage::printable(r->body.substr(0, 300)));
      return std::nullopt;
    }
    return answer;
  }

  std::string experiment_id() {
    if (const std::string id = env("MLFLOW_EXPERIMENT_ID"); !id.empty()) return id;
    const std::string name = env("MLFLOW_EXPERIMENT_NAME");
    if (name.empty()) return "0";  // MLflow's Default experiment
    auto r = request("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=" + storage::sigv4::uri_encode(name, false), "");
    if (!r) return "";
    if (r->ok()) {
      const json answer = json::parse(r->body, nullptr, false);
      const json* experiment = find_object(answer, "experiment");
      const std::string id = experiment ? string_at(*experiment, "experiment_id") : "";
      if (id.empty())
        log::warn("mlflow: {}: experiments/get-by-name answered without an experiment id: {}", where_,
                  storage::printable(r->body.substr(0, 300)));
      return id;
    }
    auto created = post("/api/2.0/mlflow/experiments/create", {{"name", name}});
    return created ? string_at(*created, "experiment_id") : "";
  }

  // The run to log to: MLFLOW_RUN_ID or the one this training already had (tracking.json or its
  // checkpoint), else a new one with tags and params. False when the server could not be reached.
  // Then the history so far is queued again: a resumed training whose run already holds its
  // steps sends only what the run lacks (see logged_).
  bool open_run() {
    if (!run_id_.empty() && !continue_run()) run_id_.clear();
    if (run_id_.empty() && !create_run()) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    std::deque<json> later = std::move(queue_);
    queue_.clear();
    for (const json& rec : history_) enqueue(rec);
    for (json& m : later) queue_.push_back(std::move(m));
    return true;
  }

  // Attaches to run_id_: false when the server does not know it (or answered nonsense). On a
  // resume, notes the newest step the run holds of each metric: the steps between the checkpoint
  // and a kill were logged already, and hf-train repeats them exactly.
  bool continue_run() {
    auto r = request("GET", "/api/2.0/mlflow/runs/get?run_id=" + storage::sigv4::uri_encode(run_id_, false), "");
    if (!r) return false;
    const json answer = r->ok() ? json::parse(r->body, nullptr, false) : json();
    const json* run = find_object(answer, "run");
    const json* info = run ? find_object(*run, "info") : nullptr;
    if (!info) {
      log::warn("mlflow: run {} not found ({}): starting a new one", storage::printable(run_id_),
                r->ok() ? "not a run in the answer" : fmt::format("HTTP {}", r->status));
      return false;
    }
    artifact_uri_ = string_at(*info, "artifact_uri");
    const json* data = find_object(*run, "data");
    if (resumed_ && data && data->contains("metrics") && (*data)["metrics"].is_array()) {
      for (const json& m : (*data)["metrics"]) {
        const std::optional<std::int64_t> step = m.is_object() ? int_at(m, "step") : std::nullopt;
        const std::string key = m.is_object() ? string_at(m, "key") : "";
        if (step && !key.empty()) logged_[key] = *step;
      }
    }
    state_->set("mlflow_run_id", run_id_);
    log::info("mlflow: continuing run {} at {}", storage::printable(run_id_), where_);
    post("/api/2.0/mlflow/runs/update", {{"run_id", run_id_}, {"status", "RUNNING"}});
    return true;
  }

  bool create_run() {
    const std::string exp = experiment_id();
    if (exp.empty()) return false;
    json tags = json::array();
    for (const auto& [k, v] : tags_) tags.push_back({{"key", k}, {"value", v}});
    auto created = post("/api/2.0/mlflow/runs/create",
                        {{"experiment_id", exp}, {"run_name", run_name_}, {"start_time", now_ms()}, {"tags", tags}});
    const json* run = created ? find_object(*created, "run") : nullptr;
    const json* info = run ? find_object(*run, "info") : nullptr;
    run_id_ = info ? string_at(*info, "run_id") : "";
    if (run_id_.empty()) {
      if (created) log::warn("mlflow: {}: runs/create answered without a run id", where_);
      return false;
    }
    artifact_uri_ = string_at(*info, "artifact_uri");
    state_->set("mlflow_run_id", run_id_);
    log::info("mlflow: run {} in experiment {} at {}", storage::printable(run_id_), storage::printable(exp), where_);
    for (std::size_t i = 0; i < params_.size(); i += kParamsPerBatch) {
      json params = json::array();
      for (std::size_t j = i; j < std::min(params_.size(), i + kParamsPerBatch); ++j)
        params.push_back({{"key", params_[j].first}, {"value", params_[j].second}});
      post("/api/2.0/mlflow/runs/log-batch", {{"run_id", run_id_}, {"params", params}});
    }
    return true;
  }

  // Files directly in model_dir (the HF model directory; checkpoints and event files stay out)
  // under the run's "model/" artifact path.
  void upload_model(const std::string& model_dir) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(model_dir, ec))
      if (e.is_regular_file() && !e.path().filename().string().starts_with('.')) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (artifact_uri_.starts_with("mlflow-artifacts:")) {
      std::string base = artifact_uri_.substr(std::string("mlflow-artifacts:").size());
      if (base.starts_with("//")) base = base.substr(base.find('/', 2));  // drop a host: ours is the server
      while (base.ends_with('/')) base.pop_back();
      for (const fs::path& f : files) {
        const std::string path = "/api/2.0/mlflow-artifacts/artifacts" + storage::sigv4::uri_encode(base, true) + "/model/" +
                                 storage::sigv4::uri_encode(f.filename().string(), false);
        auto r = request("PUT", path, "", f.string());
        if (!r || !r->ok()) {
          log::warn("mlflow: upload of {} failed{}", f.string(), r ? fmt::format(": HTTP {}", r->status) : "");
          return;
        }
      }
    } else if (artifact_uri_.starts_with("file:") || artifact_uri_.starts_with("/")) {
      std::string dir = artifact_uri_.starts_with("file://") ? artifact_uri_.substr(7)
                        : artifact_uri_.starts_with("file:") ? artifact_uri_.substr(5) : artifact_uri_;
      try {
        make_dirs((fs::path(dir) / "model").string());
        for (const fs::path& f : files) write_file_atomic((fs::path(dir) / "model" / f.filename()).string(), read_file(f.string()));
      } catch (const Error& e) {
        log::warn("mlflow: model not copied to {}: {}", dir, e.what());
        return;
      }
    } else {
      log::warn("mlflow: artifact URI {} is neither mlflow-artifacts: nor file:: model not uploaded",
                storage::printable(artifact_uri_));
      return;
    }
    log::info("mlflow: model uploaded ({} files) to run {}", files.size(), run_id_);
  }

  // The thread's body: an unexpected failure (a garbled answer, a full disk for tracking.json)
  // ends the logging, never the training.
  void work() {
    try {
      send_all();
    } catch (const std::exception& e) {
      log::warn("mlflow: {}: logging to {} stopped", e.what(), where_);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    dropped_ += queue_.size();
    queue_.clear();
    done_ = true;
    cv_.notify_all();
  }

  void send_all() {
    bool ready = false, disabled = false;
    for (;;) {
      std::vector<json> batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        idle_ = true;
        cv_.wait(lock, [this] { return !queue_.empty() || finishing_; });
        idle_ = false;
        if (cancel_) break;
      }
      if (!ready && !disabled) {
        ready = open_run();
        // request() gives up only when finishing; otherwise the server refused us for good.
        disabled = !ready;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      if (!ready) {  // everything queued is lost
        dropped_ += queue_.size();
        queue_.clear();
        if (finishing_) break;
        continue;
      }
      while (!queue_.empty() && batch.size() < kMetricsPerBatch) {
        if (!already_logged(queue_.front())) batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (batch.empty() && finishing_) {
        const std::string model_dir = model_dir_;
        lock.unlock();
        if (!model_dir.empty()) {
          upload_model(model_dir);
          post("/api/2.0/mlflow/runs/update", {{"run_id", run_id_}, {"status", "FINISHED"}, {"end_time", now_ms()}});
        }
        break;
      }
      lock.unlock();
      if (batch.empty()) continue;
      const std::size_t n = batch.size();
      if (!post("/api/2.0/mlflow/runs/log-batch", {{"run_id", run_id_}, {"metrics", std::move(batch)}})) {
        lock.lock();
        dropped_ += n;
        if (finishing_ && failing_) {
          dropped_ += queue_.size();
          queue_.clear();
        }
      }
    }
  }

  std::atomic<bool> cancel_{false};
  storage::HttpClient http_;
  std::string uri_, auth_;
  std::string where_;  // uri_ as logs show it (no password)
  std::shared_ptr<RunState> state_;
  std::string run_name_;
  std::vector<std::pair<std::string, std::string>> tags_;
  std::vector<std::pair<std::string, std::string>> params_;
  json history_;
  bool resumed_;
  std::string run_id_, artifact_uri_;
  // Newest step per metric the continued run held when this process attached (worker thread only).
  std::map<std::string, std::int64_t> logged_;
  std::set<std::string> refused_paths_;  // POSTs already warned about (worker thread only)

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<json> queue_;
  std::size_t dropped_ = 0;
  bool finishing_ = false, done_ = false;
  bool idle_ = false;  // the thread waits for values (under mutex_)
  bool warned_ = false, failing_ = false;  // worker thread only (failing_ read under mutex_)
  std::string model_dir_;
  std::thread worker_;
};

}  // namespace

std::unique_ptr<Tracker> make_mlflow(const Options& options, std::shared_ptr<RunState> state, const json& history) {
  return std::make_unique<Mlflow>(options, std::move(state), history);
}

}  // namespace hf::track
