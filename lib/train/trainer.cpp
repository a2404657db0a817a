// The training loop (hf-train). train() reads as its steps: validate the options, open the data,
// take the output directory and load or resume, the loop — batch, forward, loss, backward, clip,
// step, schedule, then the "every N steps" blocks for logging, eval and checkpoints — and finally
// the HF model directory.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>

#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/signals.h"
#include "dist/gradients.h"
#include "metrics/metrics.h"
#include "track/track.h"
#include "train/internal.h"

namespace hf::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// "eval_accuracy" / "accuracy" -> "accuracy".
std::string bare_metric(const std::string& name) { return name.starts_with("eval_") ? name.substr(5) : name; }

// More optimizer steps than any run takes; a bound that keeps step arithmetic far from overflow.
constexpr std::int64_t kMaxSteps = 1'000'000'000'000;

// True when `inner` is `outer` or lies below it (after resolving symlinks and "..").
bool same_or_inside(const std::string& inner, const std::string& outer) {
  std::error_code ec;
  if (fs::exists(inner, ec) && fs::exists(outer, ec) && fs::equivalent(inner, outer, ec)) return true;
  auto resolved = [&](const std::string& p) {
    fs::path r = fs::weakly_canonical(fs::absolute(p), ec).lexically_normal();
    return r.has_filename() ? r : r.parent_path();  // "run/" -> "run"
  };
  const fs::path rel = resolved(inner).lexically_relative(resolved(outer));
  return !rel.empty() && *rel.begin() != "..";
}

// HF's log_level_replica names; nullopt for "passive" (and for an unknown name, refused by validate).
std::optional<log::Level> replica_log_level(const std::string& name) {
  if (name == "debug") return log::Level::kDebug;
  if (name == "info") return log::Level::kInfo;
  if (name == "warning") return log::Level::kWarn;
  if (name == "error" || name == "critical") return log::Level::kError;
  return std::nullopt;
}

void validate(const TrainOptions& o) {
  auto usage = [](const std::string& m) { return Error(ErrorKind::kUsage, m); };
  auto mix = [](const std::string& m) { return Error(ErrorKind::kConfig, m); };
  if (o.per_device_train_batch_size < 1 || o.per_device_eval_batch_size < 1)
    throw usage("per_device_train_batch_size and per_device_eval_batch_size must be at least 1");
  if (o.gradient_accumulation_steps < 1) throw usage("gradient_accumulation_steps must be at least 1");
  if (!(o.learning_rate >= 0) || !std::isfinite(o.learning_rate)) throw usage("learning_rate must be finite and >= 0");
  if (o.max_steps <= 0 && !(o.num_train_epochs > 0 && std::isfinite(o.num_train_epochs)))
    throw usage("num_train_epochs must be finite and > 0 (or set max_steps)");
  if (o.max_steps > kMaxSteps) throw usage(fmt::format("max_steps must be at most {}", kMaxSteps));
  // torch.optim.AdamW's own checks: 0 <= beta < 1 (beta = 1 freezes a moment, and its bias
  // correction divides by zero), eps > 0, weight_decay >= 0.
  if (!(o.adam_beta1 >= 0 && o.adam_beta1 < 1)) throw usage(fmt::format("adam_beta1 must be in [0, 1), got {}", o.adam_beta1));
  if (!(o.adam_beta2 >= 0 && o.adam_beta2 < 1)) throw usage(fmt::format("adam_beta2 must be in [0, 1), got {}", o.adam_beta2));
  if (!(o.adam_epsilon > 0) || !std::isfinite(o.adam_epsilon))
    throw usage(fmt::format("adam_epsilon must be finite and > 0, got {}", o.adam_epsilon));
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    throw usage(fmt::format("weight_decay must be finite and >= 0, got {}", o.weight_decay));
  if (!(o.max_grad_norm >= 0) || !std::isfinite(o.max_grad_norm))
    throw usage(fmt::format("max_grad_norm must be finite and >= 0 (0: no clipping), got {}", o.max_grad_norm));
  if (!std::isfinite(o.early_stopping_threshold) || o.early_stopping_threshold < 0)
    throw usage("early_stopping_threshold must be finite and >= 0");
  if (!(o.warmup_ratio >= 0 && o.warmup_ratio <= 1)) throw usage("warmup_ratio must be in [0, 1]");
  if (o.warmup_steps < 0) throw usage("warmup_steps must be >= 0");
  if (o.logging_steps < 1) throw usage("logging_steps must be at least 1");
  if (o.save_strategy == Strategy::kSteps && o.save_steps < 1) throw usage("save_steps must be at least 1");
  if (o.eval_steps < 0) throw usage("eval_steps must be >= 0");
  if (o.save_total_limit < 0) throw usage("save_total_limit must be >= 0");
  if (o.early_stopping_patience < 0) throw usage("early_stopping_patience must be >= 0");
  if (o.dataloader_num_workers < 0) throw usage("dataloader_num_workers must be >= 0");
  if (o.threads < 0) throw usage("threads must be >= 0");
  if (o.ddp_timeout < 1) throw usage(fmt::format("ddp_timeout must be at least 1 second, got {}", o.ddp_timeout));
  if (!replica_log_level(o.log_level_replica) && o.log_level_replica != "passive")
    throw usage(fmt::format("log_level_replica: unknown value '{}' (expected debug, info, warning, error, critical "
                            "or passive)", o.log_level_replica));
  if (!o.ddp_backend.empty() && o.ddp_backend != "gloo" && o.ddp_backend != "nccl")
    throw usage(fmt::format("ddp_backend: unknown value '{}' (expected gloo or nccl)", o.ddp_backend));
  const std::string metric = bare_metric(o.metric_for_best_model);
  const auto& names = metrics::metric_names();
  if (metric != "loss" && std::find(names.begin(), names.end(), metric) == names.end())
    throw usage(fmt::format("unknown metric_for_best_model '{}' (loss, {})", o.metric_for_best_model,
                            fmt::join(names, ", ")));
  const std::int64_t eval_steps = o.eval_steps > 0 ? o.eval_steps : o.logging_steps;
  if (o.load_best_model_at_end) {
    if (o.eval_strategy == Strategy::kNo) throw mix("load_best_model_at_end needs an eval_strategy (steps or epoch)");
    if (o.eval_strategy != o.save_strategy)
      throw mix(fmt::format("load_best_model_at_end needs save_strategy == eval_strategy (got {} and {})",
                            spelling_of(kStrategies, o.save_strategy), spelling_of(kStrategies, o.eval_strategy)));
    if (o.eval_strategy == Strategy::kSteps && o.save_steps % eval_steps != 0)
      throw mix(fmt::format("load_best_model_at_end needs save_steps ({}) to be a multiple of eval_steps ({})",
                            o.save_steps, eval_steps));
  }
  if (o.early_stopping_patience > 0 && o.eval_strategy == Strategy::kNo)
    throw mix("early_stopping_patience needs an eval_strategy (steps or epoch)");
  // The final model directory is written with the base model's file names: it would replace them.
  if (!o.model.empty() && !o.output_dir.empty() && same_or_inside(o.output_dir, o.model))
    throw usage(fmt::format("--output-dir {} is (or is inside) --model {}: it would overwrite the base model; "
                            "choose another output directory",
                            o.output_dir, o.model));
}

bool default_label_names(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] != fmt::format("LABEL_{}", i)) return false;
  return true;
}

// label_map[data index] = model index when the model's labels are the data's in another order;
// empty when they are equal; nullopt when they are different sets.
std::optional<std::vector<std::int64_t>> map_labels(const std::vector<std::string>& model_labels,
                                                    const std::vector<std::string>& data_labels) {
  if (model_labels == data_labels) return std::vector<std::int64_t>{};
  if (model_labels.size() != data_labels.size() ||
      std::set(model_labels.begin(), model_labels.end()) != std::set(data_labels.begin(), data_labels.end()))
    return std::nullopt;
  std::vector<std::int64_t> map;
  for (const std::string& l : data_labels)
    map.push_back(std::find(model_labels.begin(), model_labels.end(), l) - model_labels.begin());
  return map;
}

struct LoadedModel {
  std::shared_ptr<model::SequenceClassifier> model;
  std::vector<std::int64_t> label_map;
};

// A fresh start from an HF directory. How the data's labels meet the model's head (HF-like,
// see tools/hf-train/README.md "Labels"): no head in the checkpoint -> a new head for the data's
// labels; a head whose labels are the data's (any order) -> kept, labels mapped; a head with
// LABEL_0.. names and the right size -> kept, renamed; any other head -> error, or a fresh head
// with --ignore-mismatched-sizes.
LoadedModel load_fresh(const TrainOptions& o, const data::DatasetMeta& meta) {
  const std::unique_ptr<model::ModelConfig> loaded_cfg = model::ModelConfig::load(o.model);
  const model::ModelConfig& cfg = *loaded_cfg;
  const std::vector<std::string>& data_labels = meta.label_names;
  LoadedModel out;
  model::LoadOptions load;
  load.problem_type = meta.multi_label ? model::ProblemType::kMultiLabelClassification
                                       : model::ProblemType::kSingleLabelClassification;
  const auto remap = map_labels(cfg.id2label, data_labels);
  const bool custom_names = !default_label_names(cfg.id2label);
  if (remap && custom_names) {
    load.labels = cfg.id2label;
    out.label_map = *remap;
  } else {
    load.labels = data_labels;
  }
  auto mismatch = [&] {
    return Error(ErrorKind::kDataErr,
                 fmt::format("{}: label set mismatch: the model's classification head predicts {} label(s) [{}] but "
                             "the data ({}) has {} [{}]; pass --ignore-mismatched-sizes to train a new head",
                             o.model, cfg.num_labels(), fmt::join(cfg.id2label, ", "), o.data, data_labels.size(),
                             fmt::join(data_labels, ", ")));
  };
  load.ignore_mismatched_sizes = o.ignore_mismatched_sizes;
  model::LoadReport report;
  try {
    out.model = model::from_pretrained(o.model, load, &report);
  } catch (const model::ShapeMismatch& e) {
    // A classifier of another size: say what it means here. Any other error about the head
    // (NaN weights, a truncated tensor) keeps its own message.
    if (e.parameter().starts_with("classifier.")) throw mismatch();  // every family's head is "classifier.*"
    throw;
  }
  const std::string label_layer(out.model->label_layer());  // "classifier", "classifier.out_proj"
  auto listed = [&](const std::vector<std::string>& keys) {
    return std::find(keys.begin(), keys.end(), label_layer + ".weight") != keys.end();
  };
  // A head loaded as it was (not missing, not re-initialised for its size) with other labels.
  const bool wrong_names = !listed(report.missing) && !listed(report.mismatched) && custom_names && !remap;
  if (wrong_names && !o.ignore_mismatched_sizes) throw mismatch();
  if (wrong_names) {
    log::warn("{}: the head's labels [{}] are not the data's [{}]: training a new head", o.model,
              fmt::join(cfg.id2label, ", "), fmt::join(data_labels, ", "));
    out.model->init_parameter(label_layer + ".weight");
    out.model->init_parameter(label_layer + ".bias");
  }
  if (!out.label_map.empty())
    log::info("data labels mapped onto the model's label ids [{}]", fmt::join(cfg.id2label, ", "));
  return out;
}

// Everything the loop carries between steps; saved in trainer_state.json for exact resume.
struct State {
  std::int64_t global_step = 0;
  std::int64_t epoch_index = 0;     // epoch being trained
  std::int64_t batch_in_epoch = 0;  // micro-batches of it already consumed
  double epoch = 0;                 // HF's fractional epoch
  std::optional<double> best_metric;
  std::string best_model_checkpoint;
  std::int64_t patience_counter = 0;
  double log_loss_sum = 0;  // since the last logging step
  std::int64_t log_steps = 0;
  double train_loss_sum = 0;
  json log_history = json::array();
  json tracking = json::object();  // lib/track's state (Tracker::state), so a resume elsewhere keeps the runs
};

// `world_size` is the number of ranks: batch_in_epoch counts global micro-batches (one per rank each),
// so it and the world size say where every rank is in the epoch.
json state_json(const State& s, const TrainOptions& o, std::int64_t max_steps, std::int64_t num_epochs,
                std::int64_t eval_steps, const data::Dataset& train_set, int world_size) {
  json j;
  j["best_metric"] = s.best_metric ? json(*s.best_metric) : json(nullptr);
  j["best_model_checkpoint"] = s.best_model_checkpoint.empty() ? json(nullptr) : json(s.best_model_checkpoint);
  j["epoch"] = s.epoch;
  j["eval_steps"] = eval_steps;
  j["global_step"] = s.global_step;
  j["is_hyper_param_search"] = false;
  j["is_local_process_zero"] = true;
  j["is_world_process_zero"] = true;
  j["log_history"] = s.log_history;
  j["logging_steps"] = o.logging_steps;
  j["max_steps"] = max_steps;
  j["num_train_epochs"] = num_epochs;
  j["save_steps"] = o.save_steps;
  j["train_batch_size"] = o.per_device_train_batch_size;
  j["hfkit"] = {{"format_version", kCheckpointFormat},
                {"epoch_index", s.epoch_index},
                {"batch_in_epoch", s.batch_in_epoch},
                {"patience_counter", s.patience_counter},
                {"log_loss_sum", s.log_loss_sum},
                {"log_steps", s.log_steps},
                {"train_loss_sum", s.train_loss_sum},
                {"seed", o.seed},
                {"gradient_accumulation_steps", o.gradient_accumulation_steps},
                {"group_by_length", o.group_by_length},
                {"train_examples", train_set.size()},
                {"data_source_sha256", train_set.meta().source_sha256},
                {"tracking", s.tracking},
                {"world_size", world_size}};
  return j;
}

// `quiet`: no warnings (ranks other than 0 read the state rank 0 has already read and adapted).
State state_from_json(const json& j, const std::string& path, const TrainOptions& o, const data::Dataset& train_set,
                      int world_size, bool quiet = false) {
  State s;
  try {
    const json& h = j.at("hfkit");
    if (h.at("format_version").get<int>() != kCheckpointFormat)
      throw Error(ErrorKind::kDataErr, Where{path, 0, "hfkit.format_version"}, "unsupported checkpoint format");
    s.global_step = j.at("global_step").get<std::int64_t>();
    s.epoch = j.at("epoch").get<double>();
    if (!j.at("best_metric").is_null()) s.best_metric = j.at("best_metric").get<double>();
    if (!j.at("best_model_checkpoint").is_null()) s.best_model_checkpoint = j.at("best_model_checkpoint").get<std::string>();
    s.log_history = j.at("log_history");
    s.epoch_index = h.at("epoch_index").get<std::int64_t>();
    s.batch_in_epoch = h.at("batch_in_epoch").get<std::int64_t>();
    s.patience_counter = h.at("patience_counter").get<std::int64_t>();
    s.log_loss_sum = h.at("log_loss_sum").get<double>();
    s.log_steps = h.at("log_steps").get<std::int64_t>();
    s.train_loss_sum = h.at("train_loss_sum").get<double>();
    s.tracking = h.value("tracking", json::object());
    // Exact resume needs the same data order; say so when it cannot be.
    const bool same = h.at("seed").get<std::uint64_t>() == o.seed &&
                      h.at("gradient_accumulation_steps").get<std::int64_t>() == o.gradient_accumulation_steps &&
                      h.at("group_by_length").get<bool>() == o.group_by_length &&
                      j.at("train_batch_size").get<std::int64_t>() == o.per_device_train_batch_size &&
                      h.at("train_examples").get<std::size_t>() == train_set.size() &&
                      h.at("data_source_sha256").get<std::string>() == train_set.meta().source_sha256;
    // Checkpoints from before data parallelism are one rank's.
    const int saved_world = h.value("world_size", 1);
    if (saved_world != world_size) {
      // The same examples seen, counted in this run's global micro-batches (rounded down: a few
      // may be seen twice); the global step, schedule and optimizer continue as they were.
      s.batch_in_epoch = s.batch_in_epoch * saved_world / world_size;
      if (!quiet)
        log::warn("{}: written by {} rank(s), this run has {}: continuing from global step {} with another global "
                  "batch, not exactly as the interrupted run would have continued",
                  path, saved_world, world_size, s.global_step);
    }
    if (!same && !quiet)
      log::warn("{}: seed, batch size, accumulation, length grouping or data differ from this run: resuming, "
                "but not exactly as the interrupted run would have continued",
                path);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kDataErr, fmt::format("{}: {}", path, e.what()));
  }
  return s;
}

std::vector<std::pair<std::string, torch::Tensor>> rng_states(const Runtime& rt) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  out.emplace_back("cpu", at::globalContext().defaultGenerator(torch::kCPU).get_state());
  if (rt.device.is_cuda()) out.emplace_back(rt.device.str(), at::globalContext().defaultGenerator(rt.device).get_state());
  return out;
}

void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  at::Generator gen = at::globalContext().defaultGenerator(device);  // a handle to the global one
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

void restore_rng(const std::vector<std::pair<std::string, torch::Tensor>>& states, const Runtime& rt,
                 const std::string& path) {
  bool cpu = false;
  for (const auto& [name, state] : states) {
    if (name == "cpu") {
      set_generator_state(torch::kCPU, state);
      cpu = true;
    } else if (rt.device.is_cuda() && name == rt.device.str()) {
      set_generator_state(rt.device, state);
    }
  }
  if (!cpu) throw Error(ErrorKind::kDataErr, Where{path, 0, "cpu"}, "CPU generator state missing");
}

// metrics.jsonl: log_history as JSON Lines, appended as training goes; rewritten from the
// checkpoint's history on resume so it never holds steps the resumed run will redo.
class MetricsLog {
 public:
  MetricsLog(std::string path, const json& history) : path_(std::move(path)) {
    std::string text;
    for (const json& rec : history) text += rec.dump() + "\n";
    write_file_atomic(path_, text);
    file_ = std::fopen(path_.c_str(), "a");
    if (file_ == nullptr) throw_errno(ErrorKind::kCantCreate, "cannot open", path_, errno);
  }
  ~MetricsLog() {
    if (file_) std::fclose(file_);
  }
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void append(const json& rec) {
    const std::string line = rec.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
      throw_errno(ErrorKind::kIo, "cannot write", path_, errno);
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Total 2-norm of the gradients, clipped to max_norm when > 0 (torch.nn.utils.clip_grad_norm_).
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  const std::vector<torch::Tensor> norms = at::_foreach_norm(grads, 2);
  const torch::Tensor total = torch::linalg_vector_norm(torch::stack(norms), 2);
  if (max_norm > 0) {
    constexpr double kEps = 1e-6;  // torch's, against division by zero
    at::_foreach_mul_(grads, torch::clamp(max_norm / (total + kEps), std::nullopt, 1.0));
  }
  return total.item<double>();
}

// The data of a run and the step counts that follow from it.
struct RunData {
  data::Dataset train_set;
  std::optional<data::Dataset> eval_set{};  // with an eval_strategy
  std::string train_file{};
  // global_batch: examples of one micro-batch over all ranks (per-device batch x world size);
  // batches_per_epoch counts those.
  std::int64_t n = 0, global_batch = 0, batches_per_epoch = 0, max_steps = 0, num_epochs = 0, warmup = 0, eval_steps = 0;
  std::vector<std::int64_t> lengths{};  // with group_by_length
};

// Opens the train (and eval) split and checks them against each other and the model's vocabulary.
RunData open_data(const TrainOptions& o, int world_size) {
  RunData d{data::Dataset::open(o.data, o.train_split)};
  const data::DatasetMeta& meta = d.train_set.meta();
  d.train_file = fmt::format("{}/{}.safetensors", o.data, o.train_split);
  if (d.train_set.size() == 0) throw Error(ErrorKind::kDataErr, d.train_file + ": no examples to train on");
  if (meta.label_names.empty()) throw Error(ErrorKind::kDataErr, d.train_file + ": no labels (preprocessed without --label-field?)");
  const std::unique_ptr<model::ModelConfig> cfg = model::ModelConfig::load(o.model);
  // A family without token types (DistilBERT) ignores them, as HF's Trainer drops the column.
  const std::int64_t type_vocab_size =
      cfg->type_vocab_size > 0 ? cfg->type_vocab_size : std::numeric_limits<std::int32_t>::max();
  check_token_ids(d.train_set, d.train_file, cfg->vocab_size, type_vocab_size);
  if (o.eval_strategy != Strategy::kNo) {
    d.eval_set = data::Dataset::open(o.data, o.eval_split);
    const std::string eval_file = fmt::format("{}/{}.safetensors", o.data, o.eval_split);
    if (d.eval_set->size() == 0) throw Error(ErrorKind::kDataErr, eval_file + ": no examples to evaluate on");
    const data::Dataset* splits[] = {&d.train_set, &*d.eval_set};
    data::check_same_run(splits);  // the one rule for "same preprocess run" lives in lib/data
    check_token_ids(*d.eval_set, eval_file, cfg->vocab_size, type_vocab_size);
  }
  d.n = static_cast<std::int64_t>(d.train_set.size());
  d.global_batch = o.per_device_train_batch_size * world_size;
  const std::int64_t bs = d.global_batch;
  d.batches_per_epoch = (d.n + bs - 1) / bs;
  const std::int64_t updates_per_epoch = (d.batches_per_epoch + o.gradient_accumulation_steps - 1) / o.gradient_accumulation_steps;
  const double epoch_steps = std::ceil(o.num_train_epochs * static_cast<double>(updates_per_epoch));
  if (o.max_steps <= 0 && epoch_steps > static_cast<double>(kMaxSteps))
    throw Error(ErrorKind::kUsage, fmt::format("num_train_epochs {} means more than {} steps", o.num_train_epochs, kMaxSteps));
  d.max_steps = o.max_steps > 0 ? o.max_steps : static_cast<std::int64_t>(epoch_steps);
  d.num_epochs = (d.max_steps + updates_per_epoch - 1) / updates_per_epoch;
  d.warmup = num_warmup_steps(o.warmup_steps, o.warmup_ratio, d.max_steps);
  d.eval_steps = o.eval_steps > 0 ? o.eval_steps : o.logging_steps;
  if (o.group_by_length)
    for (std::int64_t i = 0; i < d.n; ++i) d.lengths.push_back(static_cast<std::int64_t>(d.train_set.input_ids(i).size()));
  return d;
}

// Examples in global micro-batch `b` of an epoch (the last one may be short).
std::int64_t global_batch_examples(const RunData& d, std::int64_t b) {
  return std::min(d.global_batch, d.n - b * d.global_batch);
}

// A rank's part of an epoch's order: rank r takes the r-th per-device slice of every global
// micro-batch, so its i-th batch is its part of the i-th global batch (in the last, short one it
// may have fewer examples, or none). One rank takes the whole order unchanged.
std::vector<std::int64_t> shard(const std::vector<std::int64_t>& order, std::int64_t global_batch,
                                std::int64_t per_device, int rank) {
  if (global_batch == per_device) return order;
  std::vector<std::int64_t> mine;
  const auto n = static_cast<std::int64_t>(order.size());
  for (std::int64_t start = 0; start < n; start += global_batch) {
    const std::int64_t lo = std::min(n, start + rank * per_device), hi = std::min(n, lo + per_device);
    mine.insert(mine.end(), order.begin() + lo, order.begin() + hi);
  }
  return mine;
}

// One training run, in the order train() calls its steps: the output directory, load or resume,
// the loop, the final model directory.
class Run {
 public:
  Run(const TrainOptions& o, RunData& d, const Runtime& rt, RemoteSync* remote, dist::Communicator& comm)
      : o_(o), d_(d), rt_(rt), remote_(remote), comm_(comm) {}

  // Takes the output directory (its lock, leftovers of killed runs removed) and returns the
  // checkpoints to try resuming from, newest first (none for a fresh start).
  std::vector<std::string> prepare_output_dir();
  // The model, optimizer and loop state of the first candidate that loads (--resume auto falls
  // back to older ones), else the base model. Only rank 0 reads checkpoints (given candidates);
  // the other ranks receive its model, optimizer, loop state and their own RNG state from it.
  void load_or_resume(const std::vector<std::string>& candidates);
  // Trains to max_steps (or early stopping). False when a stop signal ended it after a checkpoint.
  bool loop();
  // The HF model directory: weights (the best ones with load_best_model_at_end), tokenizer,
  // trainer_state.json, train_results.json, eval_results.json; then the remote copy. Rank 0
  // writes; the others take part in the evaluation and wait for rank 0 to finish.
  void write_final_model();

 private:
  // Rank 0's start (fresh or resumed, `rng` = the checkpoint's generator states) on every rank.
  void share_start(bool resumed, const std::vector<std::pair<std::string, torch::Tensor>>& rng);
  // What all ranks act on after a step: a stop signal on any rank (its number and rank; 0 when
  // none) and rank 0's early-stopping decision.
  struct Agreement {
    int signal = 0, rank = 0;
  };
  Agreement agree();
  // Generator states for a checkpoint: this rank's as today, the others' as "rank<r>.<name>".
  std::vector<std::pair<std::string, torch::Tensor>> all_rng_states();
  // One optimizer step over the next `group` micro-batches; returns the step's mean loss.
  double step(BatchLoader& loader, std::int64_t group, std::int64_t& step_examples);
  void log_step(double grad_norm);
  // Evaluates, records eval_* and updates best metric and patience; true when it improved.
  bool evaluate_now();
  void save();
  void record(json rec) {
    if (!comm_.is_main()) return;
    st_.log_history.push_back(rec);
    metrics_log_->append(rec);
    tracker_->log(rec);
  }

  const TrainOptions& o_;
  RunData& d_;
  const Runtime& rt_;
  RemoteSync* remote_;
  dist::Communicator& comm_;
  std::optional<OutputLock> lock_;
  std::shared_ptr<model::SequenceClassifier> model_;
  std::vector<std::int64_t> label_map_;
  std::unique_ptr<AdamW> optimizer_;
  std::vector<torch::Tensor> params_;
  model::ProblemType problem_type_{};
  State st_;
  std::unique_ptr<MetricsLog> metrics_log_;
  std::unique_ptr<track::Tracker> tracker_;  // TensorBoard / MLflow (--report-to), fed by record()
  std::string metric_key_;
  bool greater_ = false;
  // Throughput: since the last log line (window) and since this process started (run).
  Clock::time_point t_start_{}, t_window_{};
  std::int64_t window_samples_ = 0, window_tokens_ = 0, run_samples_ = 0, run_tokens_ = 0, first_step_ = 0;
  double runtime_ = 0;
  std::unique_ptr<dist::GradientReducer> reducer_;  // with several ranks
  // Waiting for the gradient all-reduce after backward (what overlapping did not hide), this run.
  double allreduce_seconds_ = 0;
  bool stop_early_ = false;
  json last_eval_;
  std::int64_t last_eval_step_ = -1;
};

std::vector<std::string> Run::prepare_output_dir() {
  make_dirs(o_.output_dir);
  lock_.emplace(o_.output_dir);  // before anything in it changes: another run may be writing there
  remove_incomplete_checkpoints(o_.output_dir);
  std::vector<CheckpointRef> existing = list_checkpoints(o_.output_dir);
  // Before --overwrite-output-dir deletes anything: a refused run must leave the local side as it was.
  if (remote_ && (o_.overwrite_output_dir || o_.resume == "none")) remote_->refuse_other_runs();
  if (o_.overwrite_output_dir) {
    for (const CheckpointRef& c : existing) {
      fs::remove(fs::path(c.path) / kCompleteMarker);  // first: a half-deleted one is not complete
      fs::remove_all(c.path);
    }
    existing.clear();
  } else if (o_.resume == "auto" && remote_ && remote_->fetch_newer(existing.empty() ? -1 : existing.back().step)) {
    existing = list_checkpoints(o_.output_dir);
  }
  std::vector<std::string> candidates;
  if (o_.resume == "auto") {
    for (auto it = existing.rbegin(); it != existing.rend(); ++it) candidates.push_back(it->path);
    if (candidates.empty()) log::info("no checkpoint in {}: starting fresh", o_.output_dir);
  } else if (o_.resume != "none") {
    if (!fs::is_directory(o_.resume)) throw Error(ErrorKind::kNoInput, fmt::format("--resume {}: no such checkpoint directory", o_.resume));
    if (!fs::exists(fs::path(o_.resume) / kCompleteMarker))
      throw Error(ErrorKind::kDataErr, fmt::format("--resume {}: incomplete checkpoint (no {} marker)", o_.resume, kCompleteMarker));
    candidates.push_back(o_.resume);
  } else if (!existing.empty()) {
    throw Error(ErrorKind::kUsage, fmt::format("{} already holds checkpoints (newest {}): pass --resume auto to continue "
                                               "or --overwrite-output-dir to start over",
                                               o_.output_dir, existing.back().path));
  }
  write_file_atomic((fs::path(o_.output_dir) / "hfkit_config.yaml").string(), o_.resolved_config_yaml);
  return candidates;
}

void Run::load_or_resume(const std::vector<std::string>& candidates) {
  const data::DatasetMeta& meta = d_.train_set.meta();
  const AdamW::Options adam{o_.adam_beta1, o_.adam_beta2, o_.adam_epsilon, o_.weight_decay};
  std::vector<std::pair<std::string, torch::Tensor>> resumed_rng;
  for (const std::string& dir : candidates) {
    try {
      model::LoadReport report;
      auto m = model::from_pretrained(dir, {}, &report);
      if (!report.missing.empty() || !report.unexpected.empty() || !report.mismatched.empty())
        throw Error(ErrorKind::kDataErr, dir + ": model.safetensors does not match its config.json");
      auto map = map_labels(m->config().id2label, meta.label_names);
      if (!map)
        throw Error(ErrorKind::kDataErr, fmt::format("{}: checkpoint labels [{}] differ from the data's [{}]", dir,
                                                     fmt::join(m->config().id2label, ", "), fmt::join(meta.label_names, ", ")));
      m->to(rt_.device);
      auto opt = std::make_unique<AdamW>(m->named_parameters(), adam);
      opt->load((fs::path(dir) / "optimizer.safetensors").string());
      const CheckpointParts parts = read_checkpoint_parts(dir);
      st_ = state_from_json(parts.trainer_state, (fs::path(dir) / "trainer_state.json").string(), o_, d_.train_set,
                            comm_.world_size());
      if (opt->steps() != st_.global_step)
        throw Error(ErrorKind::kDataErr, fmt::format("{}: optimizer step {} != global_step {}", dir, opt->steps(), st_.global_step));
      if (parts.scheduler.value("num_training_steps", d_.max_steps) != d_.max_steps)
        log::warn("{}: the schedule spanned {} steps, now {}", dir, parts.scheduler.value("num_training_steps", 0), d_.max_steps);
      restore_rng(parts.rng, rt_, (fs::path(dir) / "rng_state.safetensors").string());
      model_ = m;
      label_map_ = *map;
      optimizer_ = std::move(opt);
      resumed_rng = parts.rng;
      log::info("resuming from {} (step {}, epoch {:.2f})", dir, st_.global_step, st_.epoch);
      break;
    } catch (const Error& e) {
      if (o_.resume != "auto") throw;
      log::warn("cannot resume from {}: {}", dir, e.what());
    }
  }
  const bool resumed = model_ != nullptr;
  if (!model_) {
    if (!candidates.empty()) log::warn("no usable checkpoint in {}: starting fresh", o_.output_dir);
    torch::manual_seed(o_.seed);
    LoadedModel loaded = load_fresh(o_, meta);
    model_ = loaded.model;
    label_map_ = std::move(loaded.label_map);
    model_->to(rt_.device);
    optimizer_ = std::make_unique<AdamW>(model_->named_parameters(), adam);
  }
  model_->train();
  problem_type_ = *model_->config().problem_type;
  for (const auto& p : model_->named_parameters()) params_.push_back(p.value());
  share_start(resumed, resumed_rng);
  if (comm_.world_size() > 1) reducer_ = std::make_unique<dist::GradientReducer>(comm_, params_);

  std::int64_t num_params = 0;
  for (const torch::Tensor& p : params_) num_params += p.numel();
  log::info("training: {} examples, {} labels, {} epoch(s), batch {} x {} accumulation, {} steps ({} warmup), "
            "{} parameters, {} threads",
            d_.n, meta.label_names.size(), d_.num_epochs, o_.per_device_train_batch_size, o_.gradient_accumulation_steps,
            d_.max_steps, d_.warmup, num_params, torch::get_num_threads());
  if (comm_.world_size() > 1)
    log::info("data parallel: global batch {} = {} per device x {} ranks x {} accumulation ({} backend, rank {})",
              d_.global_batch * o_.gradient_accumulation_steps, o_.per_device_train_batch_size, comm_.world_size(),
              o_.gradient_accumulation_steps, comm_.backend(), comm_.rank());
}

// Generator states travel as JSON arrays of bytes (a few KiB each) inside the start-up blob and
// the per-checkpoint gather.
json rng_to_json(const std::vector<std::pair<std::string, torch::Tensor>>& states) {
  json out = json::object();
  for (const auto& [name, state] : states) {
    const torch::Tensor bytes = state.to(torch::kCPU).contiguous();
    const auto* p = bytes.data_ptr<std::uint8_t>();
    out[name] = std::vector<std::uint8_t>(p, p + bytes.numel());
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> rng_from_json(const json& j, const std::string& prefix) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : j.items()) {
    const std::string& name = item.key();
    if (!name.starts_with(prefix)) continue;
    const auto bytes = item.value().get<std::vector<std::uint8_t>>();
    torch::Tensor t = torch::empty({static_cast<std::int64_t>(bytes.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
    out.emplace_back(name.substr(prefix.size()), t);
  }
  return out;
}

std::string rank_prefix(int rank) { return fmt::format("rank{}.", rank); }

void Run::share_start(bool resumed, const std::vector<std::pair<std::string, torch::Tensor>>& rng) {
  if (comm_.world_size() == 1) return;
  json blob;
  if (comm_.is_main())
    blob = {{"resumed", resumed},
            {"state", state_json(st_, o_, d_.max_steps, d_.num_epochs, d_.eval_steps, d_.train_set, comm_.world_size())},
            {"label_map", label_map_},
            {"optimizer_steps", optimizer_->steps()},
            {"rng", rng_to_json(rng)}};
  blob = json::parse(comm_.broadcast(blob.dump()));
  std::vector<torch::Tensor> tensors = params_;
  const std::vector<torch::Tensor> moments = optimizer_->state_tensors();
  tensors.insert(tensors.end(), moments.begin(), moments.end());
  comm_.broadcast(tensors);  // the parameters start equal everywhere, fresh or resumed
  if (comm_.is_main() || !blob["resumed"].get<bool>()) return;
  st_ = state_from_json(blob["state"], "rank 0's checkpoint", o_, d_.train_set, comm_.world_size(), /*quiet=*/true);
  label_map_ = blob["label_map"].get<std::vector<std::int64_t>>();
  optimizer_->set_steps(blob["optimizer_steps"].get<std::int64_t>());
  // This rank's generators as they were when the checkpoint was written; a checkpoint of fewer
  // ranks has none for it (rank 0 warned that the run is not exact then).
  const auto mine = rng_from_json(blob["rng"], rank_prefix(comm_.rank()));
  if (!mine.empty()) restore_rng(mine, rt_, "rank 0's checkpoint");
}

std::vector<std::pair<std::string, torch::Tensor>> Run::all_rng_states() {
  std::vector<std::pair<std::string, torch::Tensor>> states = rng_states(rt_);
  if (comm_.world_size() == 1) return states;
  const std::vector<std::string> all = comm_.allgather(rng_to_json(states).dump());
  for (int r = 1; r < comm_.world_size(); ++r) {
    for (auto& [name, state] : rng_from_json(json::parse(all[static_cast<std::size_t>(r)]), ""))
      states.emplace_back(rank_prefix(r) + name, state);
  }
  return states;
}

Run::Agreement Run::agree() {
  if (comm_.world_size() == 1) return {stop_signal(), 0};
  // One slot per rank for its stop signal, and rank 0's early-stopping decision.
  const int world = comm_.world_size();
  std::vector<torch::Tensor> flags = {torch::zeros({world + 1}, torch::kInt64)};
  flags[0][comm_.rank()] = stop_signal();
  if (comm_.is_main()) flags[0][world] = stop_early_ ? 1 : 0;
  comm_.allreduce_sum(flags);
  stop_early_ = flags[0][world].item<std::int64_t>() != 0;
  for (int r = 0; r < world; ++r)
    if (const auto sig = flags[0][r].item<std::int64_t>(); sig != 0) return {static_cast<int>(sig), r};
  return {};
}

double Run::step(BatchLoader& loader, std::int64_t group, std::int64_t& step_examples) {
  // Each loss is weighted by its share of the step's examples (over all ranks), so the gradient is
  // the mean over all.
  step_examples = 0;
  for (std::int64_t k = 0; k < group; ++k) step_examples += global_batch_examples(d_, st_.batch_in_epoch + k);
  model_->zero_grad(/*set_to_none=*/true);
  auto diverged = [&](double value) {
    return Error(ErrorKind::kDataErr, fmt::format("loss is {} at step {} (epoch {:.2f}): training diverged; lower "
                                                  "--learning-rate or check the model and data",
                                                  value, st_.global_step + 1, st_.epoch));
  };
  double step_loss = 0;
  std::int64_t step_tokens = 0;
  // This rank's micro-batches in this step (none or fewer in the epoch's last, short global batch).
  const std::int64_t mine = std::clamp<std::int64_t>(loader.num_batches() - st_.batch_in_epoch, 0, group);
  for (std::int64_t k = 0; k < mine; ++k) {
    const Batch batch = loader.next();
    const torch::Tensor loss = forward_loss(*model_, batch, rt_, problem_type_);
    const double value = loss.item<double>();
    // With several ranks all of them must fail at the same step: the summed loss is checked below.
    if (!std::isfinite(value) && comm_.world_size() == 1) throw diverged(value);
    const double share = static_cast<double>(batch.examples) / static_cast<double>(step_examples);
    // The last backward sums the gradients over the ranks as it goes. The losses are weighted by
    // each batch's share of the global step's examples, so the sum is the global batch's mean.
    if (reducer_ && k == mine - 1) reducer_->arm();
    (loss * share).backward();
    step_loss += value * share;
    step_tokens += batch.tokens;
  }
  if (reducer_) {
    // The gradients first: their buckets may have started in backward, and every rank must run
    // its collectives in the same order.
    const auto t0 = Clock::now();
    reducer_->finish();
    allreduce_seconds_ += seconds(t0, Clock::now());
    std::vector<torch::Tensor> sums = {torch::tensor({step_loss, static_cast<double>(step_tokens)}, torch::kDouble)};
    comm_.allreduce_sum(sums);
    step_loss = sums[0][0].item<double>();
    step_tokens = static_cast<std::int64_t>(sums[0][1].item<double>());
    if (!std::isfinite(step_loss)) throw diverged(step_loss);
  }
  window_tokens_ += step_tokens;
  run_tokens_ += step_tokens;
  return step_loss;
}

void Run::log_step(double grad_norm) {
  const auto now = Clock::now();
  const double dt = std::max(seconds(t_window_, now), 1e-9);
  // HF logs the scheduler's rate after its step, i.e. the rate of the next update.
  const double lr = o_.learning_rate * lr_factor(o_.lr_scheduler_type, st_.global_step, d_.warmup, d_.max_steps);
  const double loss = st_.log_loss_sum / static_cast<double>(st_.log_steps);
  record({{"step", st_.global_step}, {"epoch", st_.epoch}, {"loss", loss}, {"grad_norm", grad_norm},
          {"learning_rate", lr}, {"samples_per_second", static_cast<double>(window_samples_) / dt},
          {"tokens_per_second", static_cast<double>(window_tokens_) / dt}});
  if (comm_.is_main())
    log::info("step {}/{} epoch {:.2f}: loss {:.4f}, lr {:.3g}, grad_norm {:.3f}, {:.1f} samples/s, {:.0f} tokens/s",
            st_.global_step, d_.max_steps, st_.epoch, loss, lr, grad_norm, static_cast<double>(window_samples_) / dt,
            static_cast<double>(window_tokens_) / dt);
  st_.log_loss_sum = 0;
  st_.log_steps = 0;
  window_samples_ = window_tokens_ = 0;
  t_window_ = now;
}

bool Run::evaluate_now() {
  json rec = evaluate(*model_, *d_.eval_set, o_.per_device_eval_batch_size, rt_, label_map_, problem_type_, comm_);
  if (!rec.contains(metric_key_))
    throw Error(ErrorKind::kUsage, fmt::format("metric_for_best_model: evaluation does not report {}", metric_key_));
  const double value = rec[metric_key_].get<double>();
  if (comm_.is_main())
    log::info("eval at step {}: {} {:.4f}{}", st_.global_step, metric_key_, value,
            rec.contains("eval_accuracy") && metric_key_ != "eval_accuracy"
                ? fmt::format(", eval_accuracy {:.4f}", rec["eval_accuracy"].get<double>())
                : "");
  const bool better = !st_.best_metric || (greater_ ? value > *st_.best_metric : value < *st_.best_metric);
  // HF's EarlyStoppingCallback: an improvement must beat the previous best by the threshold.
  if (better && (!st_.best_metric || std::abs(value - *st_.best_metric) > o_.early_stopping_threshold))
    st_.patience_counter = 0;
  else
    ++st_.patience_counter;
  if (better) st_.best_metric = value;
  if (o_.early_stopping_patience > 0 && st_.patience_counter >= o_.early_stopping_patience) {
    if (comm_.is_main())
      log::info("early stopping: no improvement of {} in {} evaluations", metric_key_, st_.patience_counter);
    stop_early_ = true;
  }
  json full = {{"step", st_.global_step}, {"epoch", st_.epoch}};
  full.update(rec);
  record(full);
  last_eval_ = std::move(rec);
  last_eval_step_ = st_.global_step;
  return better;
}

void Run::save() {
  CheckpointParts parts;
  parts.rng = all_rng_states();  // collective: every rank's generators go into rank 0's checkpoint
  if (!comm_.is_main()) return;
  st_.tracking = tracker_->state();
  parts.trainer_state = state_json(st_, o_, d_.max_steps, d_.num_epochs, d_.eval_steps, d_.train_set, comm_.world_size());
  parts.scheduler = {{"lr_scheduler_type", spelling_of(kSchedulerTypes, o_.lr_scheduler_type)},
                     {"base_lr", o_.learning_rate},
                     {"num_warmup_steps", d_.warmup},
                     {"num_training_steps", d_.max_steps},
                     {"last_step", st_.global_step}};
  const std::string path = write_checkpoint(o_.output_dir, st_.global_step, *model_, *optimizer_, parts, o_.model);
  log::info("saved {}", path);
  if (remote_) remote_->saved(path, st_.best_model_checkpoint);
  rotate_checkpoints(o_.output_dir, o_.save_total_limit, st_.best_model_checkpoint,
                     [this](const std::string& dir) { return remote_ && remote_->busy(dir); });
}

bool Run::loop() {
  metric_key_ = "eval_" + bare_metric(o_.metric_for_best_model);
  greater_ = o_.greater_is_better.value_or(!metric_key_.ends_with("loss"));
  if (comm_.is_main()) {  // the other ranks write nothing
    metrics_log_ = std::make_unique<MetricsLog>((fs::path(o_.output_dir) / "metrics.jsonl").string(), st_.log_history);
    track::Options track_options{o_.report_to, o_.output_dir, o_.logging_dir, o_.run_name, o_.resolved_config_yaml,
                                 o_.run_tags};
    track_options.tags.emplace_back("hfkit.data_sha256", d_.train_set.meta().source_sha256);
    tracker_ = track::open(track_options, st_.log_history, st_.tracking);
  }
  first_step_ = st_.global_step;
  t_start_ = t_window_ = Clock::now();
  log::Progress progress(comm_.is_main() ? "train" : "", comm_.is_main() ? static_cast<std::uint64_t>(d_.max_steps - first_step_) : 0);

  while (st_.global_step < d_.max_steps && !stop_early_) {
    // Every rank draws the same order (same seed) and takes its part of each global batch.
    BatchLoader loader(d_.train_set,
                       shard(epoch_order(d_.train_set.size(), o_.seed, st_.epoch_index, d_.lengths, d_.global_batch),
                             d_.global_batch, o_.per_device_train_batch_size, comm_.rank()),
                       o_.per_device_train_batch_size, st_.batch_in_epoch, o_.dataloader_num_workers,
                       model_->config().pad_token_id, label_map_, rt_.device.is_cuda());
    while (st_.batch_in_epoch < d_.batches_per_epoch && st_.global_step < d_.max_steps) {
      const std::int64_t group = std::min(o_.gradient_accumulation_steps, d_.batches_per_epoch - st_.batch_in_epoch);
      std::int64_t step_examples = 0;
      const double step_loss = step(loader, group, step_examples);
      const double grad_norm = clip_gradients(params_, o_.max_grad_norm);
      optimizer_->step(o_.learning_rate * lr_factor(o_.lr_scheduler_type, st_.global_step, d_.warmup, d_.max_steps));

      ++st_.global_step;
      st_.batch_in_epoch += group;
      st_.epoch = static_cast<double>(st_.epoch_index) +
                  static_cast<double>(st_.batch_in_epoch) / static_cast<double>(d_.batches_per_epoch);
      const bool epoch_end = st_.batch_in_epoch == d_.batches_per_epoch;
      if (epoch_end) {
        ++st_.epoch_index;
        st_.batch_in_epoch = 0;
      }
      const bool last = st_.global_step >= d_.max_steps;
      st_.log_loss_sum += step_loss;
      ++st_.log_steps;
      st_.train_loss_sum += step_loss;
      window_samples_ += step_examples;
      run_samples_ += step_examples;

      if (st_.global_step % o_.logging_steps == 0) log_step(grad_norm);
      const bool eval_now = (o_.eval_strategy == Strategy::kSteps && (st_.global_step % d_.eval_steps == 0 || last)) ||
                            (o_.eval_strategy == Strategy::kEpoch && epoch_end);
      const bool better = eval_now && evaluate_now();

      const Agreement agreed = agree();  // the same answer on every rank
      const bool stop = agreed.signal != 0;
      const bool save_now = (o_.save_strategy == Strategy::kSteps && (st_.global_step % o_.save_steps == 0 || last)) ||
                            (o_.save_strategy == Strategy::kEpoch && (epoch_end || last));
      if (save_now || stop) {
        // Named before writing, so the checkpoint's own state records it as the best (as HF does,
        // a best evaluation without a checkpoint at its step leaves the pointer where it was).
        if (better) st_.best_model_checkpoint = (fs::path(o_.output_dir) / checkpoint_name(st_.global_step)).string();
        save();
      }
      progress.update(static_cast<std::uint64_t>(st_.global_step - first_step_));
      if (stop) {
        progress.finish();
        if (remote_ && !remote_->finish_uploads()) log::warn("the checkpoint is saved locally only");
        if (comm_.world_size() > 1 && comm_.is_main())
          log::info("stopped by signal {} on rank {} at step {}: checkpoint saved; rerun with --resume auto to continue",
                    agreed.signal, agreed.rank, st_.global_step);
        else if (comm_.is_main())
          log::info("stopped by signal {} at step {}: checkpoint saved; rerun with --resume auto to continue",
                    agreed.signal, st_.global_step);
        return false;
      }
      if (stop_early_ || epoch_end) break;  // a new epoch needs its own order and loader
    }
  }
  progress.finish();
  runtime_ = seconds(t_start_, Clock::now());
  return true;
}

void Run::write_final_model() {
  bool reloaded = false;
  if (o_.load_best_model_at_end && !st_.best_model_checkpoint.empty()) {
    const std::string name = fs::path(st_.best_model_checkpoint).filename().string();
    const std::string best = (fs::path(o_.output_dir) / name).string();
    if (comm_.is_main()) {  // the checkpoint is rank 0's; the others receive its weights
      if (remote_) remote_->ensure_local(name);  // after a resume elsewhere it may only be remote
      log::info("loading the best model from {} ({} {:.4f})", best, metric_key_, *st_.best_metric);
      model_ = model::from_pretrained(best);
      model_->to(rt_.device);
    }
    std::vector<torch::Tensor> weights = model_->parameters();
    comm_.broadcast(weights);
    reloaded = true;
  }
  const double runtime = std::max(runtime_, 1e-9);
  json results = {{"epoch", st_.epoch},
                  {"train_loss", st_.global_step ? st_.train_loss_sum / static_cast<double>(st_.global_step) : 0.0},
                  {"train_runtime", runtime_},
                  {"train_samples", d_.n},
                  {"train_samples_per_second", static_cast<double>(run_samples_) / runtime},
                  {"train_steps_per_second", static_cast<double>(st_.global_step - first_step_) / runtime},
                  {"train_tokens_per_second", static_cast<double>(run_tokens_) / runtime}};
  if (comm_.world_size() > 1 && st_.global_step > first_step_)  // rank 0's wait, stragglers included
    results["ddp_allreduce_seconds_per_step"] = allreduce_seconds_ / static_cast<double>(st_.global_step - first_step_);
  json summary = {{"step", st_.global_step}};
  summary.update(results);
  record(summary);
  if (d_.eval_set) {
    json rec = last_eval_step_ == st_.global_step && !reloaded
                   ? last_eval_
                   : evaluate(*model_, *d_.eval_set, o_.per_device_eval_batch_size, rt_, label_map_, problem_type_, comm_);
    rec["epoch"] = st_.epoch;
    if (comm_.is_main()) {
      write_file_atomic((fs::path(o_.output_dir) / "eval_results.json").string(), rec.dump(2) + "\n");
      log::info("final eval ({} split): eval_loss {:.4f}{}", o_.eval_split, rec["eval_loss"].get<double>(),
                rec.contains("eval_accuracy") ? fmt::format(", eval_accuracy {:.4f}", rec["eval_accuracy"].get<double>()) : "");
    }
  }
  if (!comm_.is_main()) return;  // the outputs are rank 0's
  model_->eval();
  model::save_pretrained(*model_, o_.output_dir);
  copy_tokenizer_files(o_.model, o_.output_dir);
  write_file_atomic((fs::path(o_.output_dir) / "trainer_state.json").string(),
                    state_json(st_, o_, d_.max_steps, d_.num_epochs, d_.eval_steps, d_.train_set, comm_.world_size())
                            .dump(2) +
                        "\n");
  write_file_atomic((fs::path(o_.output_dir) / "train_results.json").string(), results.dump(2) + "\n");
  log::info("done: {} steps, train_loss {:.4f}, {:.1f}s; model in {}", st_.global_step,
            results["train_loss"].get<double>(), runtime_, o_.output_dir);
  if (remote_) {
    // Checkpoints first (a rerun elsewhere resumes from the last one), then the final model.
    remote_->finish_uploads();
    rotate_checkpoints(o_.output_dir, o_.save_total_limit, st_.best_model_checkpoint,  // kept while uploading
                       [this](const std::string& dir) { return remote_->busy(dir); });
    remote_->push_final();
  }
  tracker_->finish(o_.output_dir);
}

}  // namespace

Outcome train(const TrainOptions& o) {
  validate(o);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  // Under a launcher: this process is one rank of a data-parallel job (one device each).
  const std::optional<dist::Placement> where = dist::placement_from_env([](const char* name) { return env(name); });
  if (where && where->rank != 0)
    if (auto most = replica_log_level(o.log_level_replica)) log::limit_level(*most);
  const Runtime rt = model::resolve_device(dist::device_for_rank(o.device, where, torch::cuda::is_available()));
  std::unique_ptr<dist::Communicator> comm =
      where ? dist::open_communicator(*where, rt.device, {o.ddp_backend, std::chrono::seconds(o.ddp_timeout)})
            : std::make_unique<dist::Communicator>();
  std::unique_ptr<RemoteSync> remote;
  if (!o.sync_to.empty() && comm->is_main()) remote = std::make_unique<RemoteSync>(o);

  RunData data = open_data(o, comm->world_size());
  Run run(o, data, rt, remote.get(), *comm);
  run.load_or_resume(comm->is_main() ? run.prepare_output_dir() : std::vector<std::string>{});
  if (!run.loop()) return Outcome::kPreempted;
  run.write_final_model();
  // The other ranks wait for rank 0's outputs: a job whose model was not written does not end 0.
  std::vector<torch::Tensor> done = {torch::ones({1})};
  comm->allreduce_sum(done);
  return Outcome::kOk;
}

}  // namespace hf::train
