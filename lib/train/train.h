// Fine-tuning a model::SequenceClassifier (any lib/model family): the training loop (dynamic
// padding, length-grouped sampling, gradient accumulation, AdamW, HF's LR schedules, clipping, eval, early stopping),
// checkpoints that resume exactly (model, optimizer, scheduler, RNG, data cursor) and the final HF
// model directory. Option names and defaults follow HF TrainingArguments. One process per device;
// under a launcher (torchrun-style or Slurm environment, see lib/dist) the processes train one model
// data-parallel over c10d, and only rank 0 writes.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

#include "storage/storage.h"

namespace hf::data {
class Dataset;
struct DatasetMeta;
}

namespace hf::train {

// HF's IntervalStrategy (eval_strategy, save_strategy) and SchedulerType (lr_scheduler_type).
enum class Strategy { kNo, kSteps, kEpoch };
enum class SchedulerType { kLinear, kCosine, kConstant, kConstantWithWarmup };

// The one spelling of each value, in flags, YAML and scheduler.json (HF's names). Parsed once, when
// the options are read; the loop only sees the enums.
template <class E>
struct Spelling {
  const char* name;
  E value;
};
inline constexpr Spelling<Strategy> kStrategies[] = {
    {"no", Strategy::kNo}, {"steps", Strategy::kSteps}, {"epoch", Strategy::kEpoch}};
inline constexpr Spelling<SchedulerType> kSchedulerTypes[] = {{"linear", SchedulerType::kLinear},
                                                              {"cosine", SchedulerType::kCosine},
                                                              {"constant", SchedulerType::kConstant},
                                                              {"constant_with_warmup", SchedulerType::kConstantWithWarmup}};

template <class E, std::size_t N>
std::vector<std::string> spellings(const Spelling<E> (&table)[N]) {
  std::vector<std::string> out;
  for (const auto& s : table) out.emplace_back(s.name);
  return out;
}
template <class E, std::size_t N>
const char* spelling_of(const Spelling<E> (&table)[N], E value) {
  for (const auto& s : table)
    if (s.value == value) return s.name;
  return "?";
}
// Throws Error(kUsage) naming `what` and the allowed spellings.
template <class E, std::size_t N>
E parse_spelling(const Spelling<E> (&table)[N], std::string_view text, std::string_view what) {
  for (const auto& s : table)
    if (text == s.name) return s.value;
  std::string allowed;
  for (const auto& s : table) allowed += (allowed.empty() ? "" : ", ") + std::string(s.name);
  throw Error(ErrorKind::kUsage, std::string(what) + ": unknown value '" + std::string(text) + "' (expected " + allowed + ")");
}

// What hf-train does; every field is a flag (dashes) and a YAML key (this spelling). See
// tools/hf-train/README.md for the meaning of each.
struct TrainOptions {
  std::string model;       // HF model directory (config.json + model.safetensors + tokenizer)
  std::string data;        // hf-preprocess output directory
  std::string output_dir;  // checkpoints, then the final model directory
  std::string train_split = "train";
  std::string eval_split = "validation";

  double learning_rate = 5e-5;
  std::int64_t per_device_train_batch_size = 8;
  std::int64_t per_device_eval_batch_size = 8;
  std::int64_t gradient_accumulation_steps = 1;
  double num_train_epochs = 3.0;
  std::int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  double warmup_ratio = 0.0;
  std::int64_t warmup_steps = 0;  // > 0 overrides warmup_ratio
  SchedulerType lr_scheduler_type = SchedulerType::kLinear;
  double weight_decay = 0.0;                 // never on biases and LayerNorm weights
  double max_grad_norm = 1.0;                // <= 0: no clipping
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  std::uint64_t seed = 42;

  std::int64_t logging_steps = 500;
  Strategy eval_strategy = Strategy::kNo;
  std::int64_t eval_steps = 0;       // 0: logging_steps
  Strategy save_strategy = Strategy::kSteps;
  std::int64_t save_steps = 500;
  std::int64_t save_total_limit = 0;  // 0: keep all
  bool load_best_model_at_end = false;
  std::string metric_for_best_model = "loss";  // with or without "eval_"
  std::optional<bool> greater_is_better;       // default: false for *loss metrics, else true
  std::int64_t early_stopping_patience = 0;    // evaluations without improvement; 0: off
  double early_stopping_threshold = 0.0;
  bool group_by_length = false;
  int dataloader_num_workers = 0;  // threads building batches ahead of the loop

  std::string device = "auto";  // auto|cpu|cuda|cuda:N
  int threads = 0;              // torch intra-op threads; 0: torch's default
  std::string resume = "none";  // none|auto|PATH of a checkpoint directory
  bool overwrite_output_dir = false;
  bool ignore_mismatched_sizes = false;  // data labels != model head: re-initialise the head
  // Remote copy of output_dir (s3://bucket/prefix, file:///path or a path; "" = none): checkpoints
  // uploaded in the background as saved, the final model pushed at the end; resume looks there too.
  std::string sync_to;
  storage::Options storage;  // connection settings for sync_to (endpoint, region, retries, ...)
  std::string resolved_config_yaml;      // written as output_dir/hfkit_config.yaml
  // Run tracking (lib/track): HF's report_to (none|tensorboard|mlflow|all), logging_dir, run_name;
  // run_tags go on the MLflow run (the data's sha256 is added here).
  std::vector<std::string> report_to = {"none"};
  std::string logging_dir;
  std::string run_name;
  std::vector<std::pair<std::string, std::string>> run_tags;
  // Data parallelism (HF's names), used when a launcher's environment says there are several ranks:
  // the c10d backend ("" = nccl on CUDA, gloo on CPU) and the timeout of the rendezvous and of each
  // collective, which bounds how long the others wait for a lost rank.
  std::string ddp_backend;
  std::int64_t ddp_timeout = 1800;
  // HF's log_level_replica: the most ranks other than 0 log (debug, info, warning, error, critical;
  // passive keeps the program's level), so N ranks do not print every line N times.
  std::string log_level_replica = "warning";
};

// Runs training: kOk when the final model directory is written, kPreempted when a stop signal
// (SIGTERM/SIGUSR1/first SIGINT) ended it after a checkpoint was saved. Throws hf::Error: kUsage/kConfig for bad or contradictory
// options, kNoInput for a missing model/dataset, kDataErr for corrupt inputs, an empty training set,
// labels that do not fit the model, or a non-finite loss (naming the step), kCantCreate/kIo for
// outputs; with sync_to, kTempFail when the final model could not be pushed (the local output is
// complete), and the store's error when --resume auto cannot look there and nothing local exists.
Outcome train(const TrainOptions& options);

// ---- Pieces of the loop, public for tests ----

// HF's schedules (transformers.optimization): the factor applied to the base learning rate at
// optimizer step `step` (0-based; the first update uses step 0).
double lr_factor(SchedulerType type, std::int64_t step, std::int64_t warmup_steps, std::int64_t total_steps);
// HF's get_warmup_steps: warmup_steps if > 0, else ceil(warmup_ratio * total_steps).
std::int64_t num_warmup_steps(std::int64_t warmup_steps, double warmup_ratio, std::int64_t total_steps);

// The example order of one epoch: a seeded shuffle (mt19937_64, the same on every platform) of
// 0..n-1 seeded by seed + epoch. With `lengths`, HF's get_length_grouped_indices: the shuffled order
// is cut into megabatches of min(n / (4 * batch_size), 50) batches (at least 1), each sorted by
// length (longest first, stable), and the longest example of all is swapped to the front, so a
// memory blow-up shows on the first step.
std::vector<std::int64_t> epoch_order(std::size_t n, std::uint64_t seed, std::int64_t epoch,
                                      std::span<const std::int64_t> lengths = {}, std::int64_t batch_size = 1);

// One padded batch. input_ids/attention_mask/token_type_ids [B, T] int64 with T the longest
// example of the batch; labels [B] int64 or [B, K] float.
struct Batch {
  torch::Tensor input_ids, attention_mask, token_type_ids, labels;
  std::int64_t examples = 0;
  std::int64_t tokens = 0;  // real (non-pad) tokens
};
// Requires: indices not empty and < dataset.size(). `label_map` (when not empty) maps the
// dataset's label index to the model's. `pin` puts the tensors in page-locked memory.
Batch collate(const data::Dataset& dataset, std::span<const std::int64_t> indices, std::int64_t pad_token_id,
              std::span<const std::int64_t> label_map = {}, bool pin = false);

// torch.optim.AdamW (decoupled weight decay, bias correction, no amsgrad) over named parameters,
// run by ATen's fused kernel; two groups: with weight decay and without (biases, LayerNorm).
// State is kept by HF parameter name so it can be saved to and restored from safetensors exactly.
class AdamW {
 public:
  struct Options {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  };
  AdamW(const torch::OrderedDict<std::string, torch::Tensor>& params, Options options);
  // One update of every parameter that has a gradient, at learning rate `lr`.
  void step(double lr);
  std::int64_t steps() const { return steps_; }
  // Writes `path` atomically: "<name>.exp_avg" and "<name>.exp_avg_sq" F32 tensors, the step count
  // and hyper-parameters in the metadata. Throws Error(kCantCreate/kIo).
  void save(const std::string& path) const;
  // Restores what save() wrote. Throws Error(kNoInput) when missing, Error(kDataErr) when corrupt or
  // when its parameter names or shapes differ from this optimizer's.
  void load(const std::string& path);
  // The state as tensors (moments and per-parameter step counts, in a fixed order) and the step
  // count: what a rank receives from rank 0 to continue where it is.
  std::vector<torch::Tensor> state_tensors() const;
  void set_steps(std::int64_t steps) { steps_ = steps; }
  // True for names that get no weight decay (HF: biases and LayerNorm weights).
  static bool no_decay(const std::string& name);

 private:
  struct Group {
    std::vector<std::string> names;
    std::vector<torch::Tensor> params, exp_avg, exp_avg_sq, steps;
    double weight_decay = 0.0;
  };
  Options options_;
  std::vector<Group> groups_;
  std::int64_t steps_ = 0;
};

// Refuses (Error(kDataErr) naming the file, field and example index) an input id outside
// [0, vocab_size) or a token type id outside [0, type_vocab_size): ids the model has no embedding
// for, e.g. from a dataset tokenized for another model.
void check_token_ids(const data::Dataset& dataset, const std::string& file, std::int64_t vocab_size,
                     std::int64_t type_vocab_size);

// Checkpoints in an output directory: `checkpoint-<step>/` with a `.complete` marker (the names
// and rules are lib/train's, see internal.h; remote copies carry the same).
struct CheckpointRef {
  std::int64_t step = 0;
  std::string path;
};
// Complete checkpoints, oldest first. Directories without the marker are ignored.
std::vector<CheckpointRef> list_checkpoints(const std::string& output_dir);
// Which checkpoints rotation deletes so that at most `limit` remain: oldest first, never `keep_best`
// (a path, may be empty) and never the newest. limit <= 0: none.
std::vector<CheckpointRef> checkpoints_to_delete(const std::vector<CheckpointRef>& complete, std::int64_t limit,
                                                 const std::string& keep_best);

}  // namespace hf::train
