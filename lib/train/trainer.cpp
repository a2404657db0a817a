// The training loop (hf-train): set-up (options, device, labels, resume), then one loop that reads
// top to bottom — batch, forward, loss, backward, clip, step, schedule — followed by the "every N
// steps" blocks for logging, eval and checkpoints, and finally the HF model directory.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/signals.h"
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

void validate(const TrainOptions& o) {
  auto usage = [](const std::string& m) { return Error(ErrorKind::kUsage, m); };
  auto mix = [](const std::string& m) { return Error(ErrorKind::kConfig, m); };
  if (o.per_device_train_batch_size < 1 || o.per_device_eval_batch_size < 1)
    throw usage("per_device_train_batch_size and per_device_eval_batch_size must be at least 1");
  if (o.gradient_accumulation_steps < 1) throw usage("gradient_accumulation_steps must be at least 1");
  if (!(o.learning_rate >= 0)) throw usage("learning_rate must be >= 0");
  if (o.max_steps <= 0 && !(o.num_train_epochs > 0))
    throw usage("num_train_epochs must be > 0 (or set max_steps)");
  if (!(o.warmup_ratio >= 0 && o.warmup_ratio <= 1)) throw usage("warmup_ratio must be in [0, 1]");
  if (o.warmup_steps < 0) throw usage("warmup_steps must be >= 0");
  if (o.logging_steps < 1) throw usage("logging_steps must be at least 1");
  if (o.save_strategy == "steps" && o.save_steps < 1) throw usage("save_steps must be at least 1");
  if (o.eval_steps < 0) throw usage("eval_steps must be >= 0");
  if (o.save_total_limit < 0) throw usage("save_total_limit must be >= 0");
  if (o.early_stopping_patience < 0) throw usage("early_stopping_patience must be >= 0");
  if (o.dataloader_num_workers < 0) throw usage("dataloader_num_workers must be >= 0");
  if (o.threads < 0) throw usage("threads must be >= 0");
  lr_factor(o.lr_scheduler_type, 0, 0, 1);  // throws for an unknown type
  const std::string metric = bare_metric(o.metric_for_best_model);
  const auto& names = metrics::metric_names();
  if (metric != "loss" && std::find(names.begin(), names.end(), metric) == names.end())
    throw usage(fmt::format("unknown metric_for_best_model '{}' (loss, {})", o.metric_for_best_model,
                            fmt::join(names, ", ")));
  const std::int64_t eval_steps = o.eval_steps > 0 ? o.eval_steps : o.logging_steps;
  if (o.load_best_model_at_end) {
    if (o.eval_strategy == "no") throw mix("load_best_model_at_end needs an eval_strategy (steps or epoch)");
    if (o.eval_strategy != o.save_strategy)
      throw mix(fmt::format("load_best_model_at_end needs save_strategy == eval_strategy (got {} and {})",
                            o.save_strategy, o.eval_strategy));
    if (o.eval_strategy == "steps" && o.save_steps % eval_steps != 0)
      throw mix(fmt::format("load_best_model_at_end needs save_steps ({}) to be a multiple of eval_steps ({})",
                            o.save_steps, eval_steps));
  }
  if (o.early_stopping_patience > 0 && o.eval_strategy == "no")
    throw mix("early_stopping_patience needs an eval_strategy (steps or epoch)");
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
  model::BertForSequenceClassification model{nullptr};
  std::vector<std::int64_t> label_map;
};

// A fresh start from an HF directory. How the data's labels meet the model's head (HF-like,
// see tools/hf-train/README.md "Labels"): no head in the checkpoint -> a new head for the data's
// labels; a head whose labels are the data's (any order) -> kept, labels mapped; a head with
// LABEL_0.. names and the right size -> kept, renamed; any other head -> error, or a fresh head
// with --ignore-mismatched-sizes.
LoadedModel load_fresh(const TrainOptions& o, const data::DatasetMeta& meta) {
  const model::BertConfig cfg = model::BertConfig::load(o.model);
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
  } catch (const Error& e) {
    // A classifier of another size (from_pretrained names the tensor): say what it means here.
    if (e.kind() == ErrorKind::kDataErr && std::string_view(e.what()).find("\"classifier.") != std::string_view::npos)
      throw mismatch();
    throw;
  }
  auto listed = [](const std::vector<std::string>& keys) {
    return std::find(keys.begin(), keys.end(), "classifier.weight") != keys.end();
  };
  // A head loaded as it was (not missing, not re-initialised for its size) with other labels.
  const bool wrong_names = !listed(report.missing) && !listed(report.mismatched) && custom_names && !remap;
  if (wrong_names && !o.ignore_mismatched_sizes) throw mismatch();
  if (wrong_names) {
    log::warn("{}: the head's labels [{}] are not the data's [{}]: training a new head", o.model,
              fmt::join(cfg.id2label, ", "), fmt::join(data_labels, ", "));
    out.model->init_parameter("classifier.weight");
    out.model->init_parameter("classifier.bias");
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
};

json state_json(const State& s, const TrainOptions& o, std::int64_t max_steps, std::int64_t num_epochs,
                std::int64_t eval_steps, const data::Dataset& train_set) {
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
                {"data_source_sha256", train_set.meta().source_sha256}};
  return j;
}

State state_from_json(const json& j, const std::string& path, const TrainOptions& o, const data::Dataset& train_set) {
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
    // Exact resume needs the same data order; say so when it cannot be.
    const bool same = h.at("seed").get<std::uint64_t>() == o.seed &&
                      h.at("gradient_accumulation_steps").get<std::int64_t>() == o.gradient_accumulation_steps &&
                      h.at("group_by_length").get<bool>() == o.group_by_length &&
                      j.at("train_batch_size").get<std::int64_t>() == o.per_device_train_batch_size &&
                      h.at("train_examples").get<std::size_t>() == train_set.size() &&
                      h.at("data_source_sha256").get<std::string>() == train_set.meta().source_sha256;
    if (!same)
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

}  // namespace

Outcome train(const TrainOptions& o) {
  validate(o);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const Runtime rt = model::resolve_device(o.device);
  std::unique_ptr<RemoteSync> remote;
  if (!o.sync_to.empty()) remote = std::make_unique<RemoteSync>(o);

  // ---- Data ----
  data::Dataset train_set = data::Dataset::open(o.data, o.train_split);
  const data::DatasetMeta& meta = train_set.meta();
  const std::string train_file = fmt::format("{}/{}.safetensors", o.data, o.train_split);
  if (train_set.size() == 0) throw Error(ErrorKind::kDataErr, train_file + ": no examples to train on");
  if (meta.label_names.empty()) throw Error(ErrorKind::kDataErr, train_file + ": no labels (preprocessed without --label-field?)");
  const bool do_eval = o.eval_strategy != "no";
  std::optional<data::Dataset> eval_set;
  if (do_eval) {
    eval_set = data::Dataset::open(o.data, o.eval_split);
    const std::string eval_file = fmt::format("{}/{}.safetensors", o.data, o.eval_split);
    if (eval_set->size() == 0) throw Error(ErrorKind::kDataErr, eval_file + ": no examples to evaluate on");
    if (eval_set->meta().label_names != meta.label_names || eval_set->meta().multi_label != meta.multi_label)
      throw Error(ErrorKind::kDataErr, eval_file + ": labels differ from the " + o.train_split + " split's");
  }
  const auto n = static_cast<std::int64_t>(train_set.size());
  const std::int64_t bs = o.per_device_train_batch_size;
  const std::int64_t batches_per_epoch = (n + bs - 1) / bs;
  const std::int64_t updates_per_epoch = (batches_per_epoch + o.gradient_accumulation_steps - 1) / o.gradient_accumulation_steps;
  const std::int64_t max_steps = o.max_steps > 0 ? o.max_steps
                                                 : static_cast<std::int64_t>(std::ceil(o.num_train_epochs * static_cast<double>(updates_per_epoch)));
  const std::int64_t num_epochs = (max_steps + updates_per_epoch - 1) / updates_per_epoch;
  const std::int64_t warmup = num_warmup_steps(o.warmup_steps, o.warmup_ratio, max_steps);
  const std::int64_t eval_steps = o.eval_steps > 0 ? o.eval_steps : o.logging_steps;
  std::vector<std::int64_t> lengths;
  if (o.group_by_length)
    for (std::int64_t i = 0; i < n; ++i) lengths.push_back(static_cast<std::int64_t>(train_set.input_ids(i).size()));

  // ---- Output directory and resume ----
  make_dirs(o.output_dir);
  remove_incomplete_checkpoints(o.output_dir);
  std::vector<CheckpointRef> existing = list_checkpoints(o.output_dir);
  // Before --overwrite-output-dir deletes anything: a refused run must leave the local side as it was.
  if (remote && (o.overwrite_output_dir || o.resume == "none")) remote->refuse_other_runs();
  if (o.overwrite_output_dir) {
    for (const CheckpointRef& c : existing) {
      fs::remove(fs::path(c.path) / kCompleteMarker);  // first: a half-deleted one is not complete
      fs::remove_all(c.path);
    }
    existing.clear();
  } else if (o.resume == "auto" && remote && remote->fetch_newer(existing.empty() ? -1 : existing.back().step)) {
    existing = list_checkpoints(o.output_dir);
  }
  std::vector<std::string> candidates;
  if (o.resume == "auto") {
    for (auto it = existing.rbegin(); it != existing.rend(); ++it) candidates.push_back(it->path);
    if (candidates.empty()) log::info("no checkpoint in {}: starting fresh", o.output_dir);
  } else if (o.resume != "none") {
    if (!fs::is_directory(o.resume)) throw Error(ErrorKind::kNoInput, fmt::format("--resume {}: no such checkpoint directory", o.resume));
    if (!fs::exists(fs::path(o.resume) / kCompleteMarker))
      throw Error(ErrorKind::kDataErr, fmt::format("--resume {}: incomplete checkpoint (no {} marker)", o.resume, kCompleteMarker));
    candidates.push_back(o.resume);
  } else if (!existing.empty()) {
    throw Error(ErrorKind::kUsage, fmt::format("{} already holds checkpoints (newest {}): pass --resume auto to continue "
                                               "or --overwrite-output-dir to start over",
                                               o.output_dir, existing.back().path));
  }
  write_file_atomic((fs::path(o.output_dir) / "hfkit_config.yaml").string(), o.resolved_config_yaml);

  model::BertForSequenceClassification model{nullptr};
  std::vector<std::int64_t> label_map;
  std::unique_ptr<AdamW> optimizer;
  State st;
  const AdamW::Options adam{o.adam_beta1, o.adam_beta2, o.adam_epsilon, o.weight_decay};
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
      m->to(rt.device);
      auto opt = std::make_unique<AdamW>(m->named_parameters(), adam);
      opt->load((fs::path(dir) / "optimizer.safetensors").string());
      const CheckpointParts parts = read_checkpoint_parts(dir);
      st = state_from_json(parts.trainer_state, (fs::path(dir) / "trainer_state.json").string(), o, train_set);
      if (opt->steps() != st.global_step)
        throw Error(ErrorKind::kDataErr, fmt::format("{}: optimizer step {} != global_step {}", dir, opt->steps(), st.global_step));
      if (parts.scheduler.value("num_training_steps", max_steps) != max_steps)
        log::warn("{}: the schedule spanned {} steps, now {}", dir, parts.scheduler.value("num_training_steps", 0), max_steps);
      restore_rng(parts.rng, rt, (fs::path(dir) / "rng_state.safetensors").string());
      model = m;
      label_map = *map;
      optimizer = std::move(opt);
      log::info("resuming from {} (step {}, epoch {:.2f})", dir, st.global_step, st.epoch);
      break;
    } catch (const Error& e) {
      if (o.resume != "auto") throw;
      log::warn("cannot resume from {}: {}", dir, e.what());
    }
  }
  if (!model) {
    if (!candidates.empty()) log::warn("no usable checkpoint in {}: starting fresh", o.output_dir);
    torch::manual_seed(o.seed);
    LoadedModel loaded = load_fresh(o, meta);
    model = loaded.model;
    label_map = std::move(loaded.label_map);
    model->to(rt.device);
    optimizer = std::make_unique<AdamW>(model->named_parameters(), adam);
  }
  model->train();
  const model::ProblemType problem_type = *model->config().problem_type;
  std::vector<torch::Tensor> params;
  for (const auto& p : model->named_parameters()) params.push_back(p.value());

  std::int64_t num_params = 0;
  for (const torch::Tensor& p : params) num_params += p.numel();
  log::info("training: {} examples, {} labels, {} epoch(s), batch {} x {} accumulation, {} steps ({} warmup), "
            "{} parameters, {} threads",
            n, meta.label_names.size(), num_epochs, bs, o.gradient_accumulation_steps, max_steps, warmup, num_params,
            torch::get_num_threads());

  // ---- The loop ----
  const std::string metric_key = "eval_" + bare_metric(o.metric_for_best_model);
  const bool greater = o.greater_is_better.value_or(!metric_key.ends_with("loss"));
  MetricsLog metrics_log((fs::path(o.output_dir) / "metrics.jsonl").string(), st.log_history);
  track::Options track_options{o.report_to, o.output_dir, o.logging_dir, o.run_name, o.resolved_config_yaml, o.run_tags};
  track_options.tags.emplace_back("hfkit.data_sha256", train_set.meta().source_sha256);
  const std::unique_ptr<track::Tracker> tracker = track::open(track_options, st.log_history);
  auto record = [&](json rec) {
    st.log_history.push_back(rec);
    metrics_log.append(rec);
    tracker->log(rec);
  };
  const auto busy = [&](const std::string& dir) { return remote && remote->busy(dir); };
  auto save = [&] {
    CheckpointParts parts;
    parts.trainer_state = state_json(st, o, max_steps, num_epochs, eval_steps, train_set);
    parts.scheduler = {{"lr_scheduler_type", o.lr_scheduler_type}, {"base_lr", o.learning_rate},
                       {"num_warmup_steps", warmup}, {"num_training_steps", max_steps}, {"last_step", st.global_step}};
    parts.rng = rng_states(rt);
    const std::string path = write_checkpoint(o.output_dir, st.global_step, *model, *optimizer, parts, o.model);
    log::info("saved {}", path);
    if (remote) remote->saved(path, st.best_model_checkpoint);
    rotate_checkpoints(o.output_dir, o.save_total_limit, st.best_model_checkpoint, busy);
  };
  const std::int64_t first_step = st.global_step;
  const auto t_start = Clock::now();
  auto t_window = t_start;
  std::int64_t window_samples = 0, window_tokens = 0, run_samples = 0, run_tokens = 0;
  bool stop_early = false;
  json last_eval;
  std::int64_t last_eval_step = -1;
  log::Progress progress("train", static_cast<std::uint64_t>(max_steps - first_step));

  while (st.global_step < max_steps && !stop_early) {
    BatchLoader loader(train_set, epoch_order(train_set.size(), o.seed, st.epoch_index, lengths, bs), bs,
                       st.batch_in_epoch, o.dataloader_num_workers, model->config().pad_token_id, label_map,
                       rt.device.is_cuda());
    while (st.batch_in_epoch < batches_per_epoch && st.global_step < max_steps) {
      // One optimizer step over `group` micro-batches; each loss is weighted by its share of the
      // step's examples, so the gradient is the mean over all of them.
      const std::int64_t group = std::min(o.gradient_accumulation_steps, batches_per_epoch - st.batch_in_epoch);
      std::int64_t step_examples = 0;
      for (std::int64_t k = 0; k < group; ++k) step_examples += loader.batch_examples(st.batch_in_epoch + k);
      model->zero_grad(/*set_to_none=*/true);
      double step_loss = 0;
      for (std::int64_t k = 0; k < group; ++k) {
        const Batch batch = loader.next();
        const torch::Tensor loss = forward_loss(model, batch, rt, problem_type);
        const double value = loss.item<double>();
        if (!std::isfinite(value))
          throw Error(ErrorKind::kDataErr,
                      fmt::format("loss is {} at step {} (epoch {:.2f}): training diverged; lower --learning-rate "
                                  "or check the model and data",
                                  value, st.global_step + 1, st.epoch));
        const double share = static_cast<double>(batch.examples) / static_cast<double>(step_examples);
        (loss * share).backward();
        step_loss += value * share;
        window_tokens += batch.tokens;
        run_tokens += batch.tokens;
      }
      const double grad_norm = clip_gradients(params, o.max_grad_norm);
      optimizer->step(o.learning_rate * lr_factor(o.lr_scheduler_type, st.global_step, warmup, max_steps));

      ++st.global_step;
      st.batch_in_epoch += group;
      st.epoch = static_cast<double>(st.epoch_index) +
                 static_cast<double>(st.batch_in_epoch) / static_cast<double>(batches_per_epoch);
      const bool epoch_end = st.batch_in_epoch == batches_per_epoch;
      if (epoch_end) {
        ++st.epoch_index;
        st.batch_in_epoch = 0;
      }
      const bool last = st.global_step >= max_steps;
      st.log_loss_sum += step_loss;
      ++st.log_steps;
      st.train_loss_sum += step_loss;
      window_samples += step_examples;
      run_samples += step_examples;

      if (st.global_step % o.logging_steps == 0) {
        const auto now = Clock::now();
        const double dt = std::max(seconds(t_window, now), 1e-9);
        // HF logs the scheduler's rate after its step, i.e. the rate of the next update.
        const double lr = o.learning_rate * lr_factor(o.lr_scheduler_type, st.global_step, warmup, max_steps);
        const double loss = st.log_loss_sum / static_cast<double>(st.log_steps);
        record({{"step", st.global_step}, {"epoch", st.epoch}, {"loss", loss}, {"grad_norm", grad_norm},
                {"learning_rate", lr}, {"samples_per_second", static_cast<double>(window_samples) / dt},
                {"tokens_per_second", static_cast<double>(window_tokens) / dt}});
        log::info("step {}/{} epoch {:.2f}: loss {:.4f}, lr {:.3g}, grad_norm {:.3f}, {:.1f} samples/s, {:.0f} tokens/s",
                  st.global_step, max_steps, st.epoch, loss, lr, grad_norm, static_cast<double>(window_samples) / dt,
                  static_cast<double>(window_tokens) / dt);
        st.log_loss_sum = 0;
        st.log_steps = 0;
        window_samples = window_tokens = 0;
        t_window = now;
      }

      bool better = false;
      const bool eval_now = (o.eval_strategy == "steps" && (st.global_step % eval_steps == 0 || last)) ||
                            (o.eval_strategy == "epoch" && epoch_end);
      if (eval_now) {
        json rec = evaluate(model, *eval_set, o.per_device_eval_batch_size, rt, label_map, problem_type);
        if (!rec.contains(metric_key))
          throw Error(ErrorKind::kUsage, fmt::format("metric_for_best_model: evaluation does not report {}", metric_key));
        const double value = rec[metric_key].get<double>();
        log::info("eval at step {}: {} {:.4f}{}", st.global_step, metric_key, value,
                  rec.contains("eval_accuracy") && metric_key != "eval_accuracy"
                      ? fmt::format(", eval_accuracy {:.4f}", rec["eval_accuracy"].get<double>())
                      : "");
        better = !st.best_metric || (greater ? value > *st.best_metric : value < *st.best_metric);
        // HF's EarlyStoppingCallback: an improvement must beat the previous best by the threshold.
        if (better && (!st.best_metric || std::abs(value - *st.best_metric) > o.early_stopping_threshold))
          st.patience_counter = 0;
        else
          ++st.patience_counter;
        if (better) st.best_metric = value;
        if (o.early_stopping_patience > 0 && st.patience_counter >= o.early_stopping_patience) {
          log::info("early stopping: no improvement of {} in {} evaluations", metric_key, st.patience_counter);
          stop_early = true;
        }
        json full = {{"step", st.global_step}, {"epoch", st.epoch}};
        full.update(rec);
        record(full);
        last_eval = std::move(rec);
        last_eval_step = st.global_step;
      }

      const bool stop = stop_requested();
      const bool save_now = (o.save_strategy == "steps" && (st.global_step % o.save_steps == 0 || last)) ||
                            (o.save_strategy == "epoch" && (epoch_end || last));
      if (save_now || stop) {
        // Named before writing, so the checkpoint's own state records it as the best (as HF does,
        // a best evaluation without a checkpoint at its step leaves the pointer where it was).
        if (better) st.best_model_checkpoint = (fs::path(o.output_dir) / fmt::format("checkpoint-{}", st.global_step)).string();
        save();
      }
      progress.update(static_cast<std::uint64_t>(st.global_step - first_step));
      if (stop) {
        progress.finish();
        if (remote && !remote->finish_uploads()) log::warn("the checkpoint is saved locally only");
        log::info("stopped by signal {} at step {}: checkpoint saved; rerun with --resume auto to continue",
                  stop_signal(), st.global_step);
        return Outcome::kPreempted;
      }
      if (stop_early || epoch_end) break;  // a new epoch needs its own order and loader
    }
  }
  progress.finish();
  const double runtime = seconds(t_start, Clock::now());

  // ---- Final model directory ----
  bool reloaded = false;
  if (o.load_best_model_at_end && !st.best_model_checkpoint.empty()) {
    const std::string name = fs::path(st.best_model_checkpoint).filename().string();
    const std::string best = (fs::path(o.output_dir) / name).string();
    if (remote) remote->ensure_local(name);  // after a resume elsewhere it may only be remote
    log::info("loading the best model from {} ({} {:.4f})", best, metric_key, *st.best_metric);
    model = model::from_pretrained(best);
    model->to(rt.device);
    reloaded = true;
  }
  json results = {{"epoch", st.epoch},
                  {"train_loss", st.global_step ? st.train_loss_sum / static_cast<double>(st.global_step) : 0.0},
                  {"train_runtime", runtime},
                  {"train_samples", n},
                  {"train_samples_per_second", static_cast<double>(run_samples) / std::max(runtime, 1e-9)},
                  {"train_steps_per_second", static_cast<double>(st.global_step - first_step) / std::max(runtime, 1e-9)},
                  {"train_tokens_per_second", static_cast<double>(run_tokens) / std::max(runtime, 1e-9)}};
  json summary = {{"step", st.global_step}};
  summary.update(results);
  record(summary);
  if (do_eval) {
    json rec = last_eval_step == st.global_step && !reloaded
                   ? last_eval
                   : evaluate(model, *eval_set, o.per_device_eval_batch_size, rt, label_map, problem_type);
    rec["epoch"] = st.epoch;
    write_file_atomic((fs::path(o.output_dir) / "eval_results.json").string(), rec.dump(2) + "\n");
    log::info("final eval ({} split): eval_loss {:.4f}{}", o.eval_split, rec["eval_loss"].get<double>(),
              rec.contains("eval_accuracy") ? fmt::format(", eval_accuracy {:.4f}", rec["eval_accuracy"].get<double>()) : "");
  }
  model->eval();
  model::save_pretrained(*model, o.output_dir);
  copy_tokenizer_files(o.model, o.output_dir);
  write_file_atomic((fs::path(o.output_dir) / "trainer_state.json").string(),
                    state_json(st, o, max_steps, num_epochs, eval_steps, train_set).dump(2) + "\n");
  write_file_atomic((fs::path(o.output_dir) / "train_results.json").string(), results.dump(2) + "\n");
  log::info("done: {} steps, train_loss {:.4f}, {:.1f}s; model in {}", st.global_step, results["train_loss"].get<double>(),
            runtime, o.output_dir);
  if (remote) {
    // Checkpoints first (a rerun elsewhere resumes from the last one), then the final model.
    remote->finish_uploads();
    rotate_checkpoints(o.output_dir, o.save_total_limit, st.best_model_checkpoint, busy);  // kept while uploading
    remote->push_final();
  }
  tracker->finish(o.output_dir);
  return Outcome::kOk;
}

}  // namespace hf::train
