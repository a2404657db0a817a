// Internals shared by lib/train's sources (not a public header): the batch loader, evaluation, and
// checkpoint reading/writing.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/data.h"
#include "dist/communicator.h"
#include "model/device.h"
#include "model/model.h"
#include "train/train.h"

namespace hf::train {

// Builds the micro-batches of an epoch in order, `workers` threads ahead of the loop (0: on the
// calling thread). Batches are pure functions of the order, so workers never change results.
class BatchLoader {
 public:
  BatchLoader(const data::Dataset& dataset, std::vector<std::int64_t> order, std::int64_t batch_size,
              std::int64_t first_batch, int workers, std::int64_t pad_token_id, std::vector<std::int64_t> label_map,
              bool pin);
  ~BatchLoader();
  std::int64_t num_batches() const { return num_batches_; }
  // Examples in batch `b` (without building it).
  std::int64_t batch_examples(std::int64_t b) const;
  // The next batch. Requires: batches remain.
  Batch next();

 private:
  Batch make(std::int64_t b) const;
  void fill();

  const data::Dataset& dataset_;
  std::vector<std::int64_t> order_;
  std::int64_t batch_size_, num_batches_, next_ = 0, queued_ = 0;
  int workers_;
  std::int64_t pad_token_id_;
  std::vector<std::int64_t> label_map_;
  bool pin_;
  std::deque<std::future<Batch>> ahead_;
};

// Forward pass settings shared by training and evaluation.
using Runtime = model::DeviceSetup;

// Evaluates `model` (eval mode, no grad; restored to train mode after) on `dataset` and returns HF's
// eval_* metrics: eval_loss plus, for classification, lib/metrics' report scalars (eval_accuracy,
// eval_f1_macro, ...), then eval_runtime, eval_samples_per_second, eval_steps_per_second.
// Collective: every rank of `comm` calls it, evaluates its share of the batches, and all get the
// metrics one process would compute.
nlohmann::ordered_json evaluate(model::SequenceClassifier& model, const data::Dataset& dataset,
                                std::int64_t batch_size, const Runtime& rt, const std::vector<std::int64_t>& label_map,
                                model::ProblemType problem_type, dist::Communicator& comm);

// Loss of one batch under the runtime's autocast; logits stay as computed.
torch::Tensor forward_loss(model::SequenceClassifier& model, const Batch& batch, const Runtime& rt,
                           model::ProblemType problem_type, torch::Tensor* logits = nullptr);

// Whole safetensors files of CPU tensors (F32, I64, U8) for optimizer and RNG state.
struct TensorFile {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::map<std::string, std::string> metadata;
  const torch::Tensor* find(const std::string& name) const;
};
// Writes atomically. Throws Error(kCantCreate/kIo).
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata);
// Throws Error(kNoInput) when missing, Error(kDataErr) when corrupt or of another dtype.
TensorFile load_tensors(const std::string& path);

// The advisory lock of an output directory (one writer at a time), held from construction to
// destruction. Throws Error(kTempFail) naming the holder's pid and host when another process holds
// it, Error(kCantCreate/kIo) when the lock file cannot be made.
class OutputLock {
 public:
  static constexpr const char* kLockFile = ".hfkit.lock";
  explicit OutputLock(const std::string& dir);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// Checkpoint rules, defined here only (lib/storage receives them as a CheckpointLayout and a
// KeepPolicy): a checkpoint is the directory `checkpoint-<step>` holding the `.complete` marker,
// written last and deleted first, locally and remotely.
inline constexpr const char* kCompleteMarker = ".complete";
inline constexpr const char* kCheckpointPrefix = "checkpoint-";
inline constexpr int kCheckpointFormat = 1;
// "checkpoint-120" for step 120.
std::string checkpoint_name(std::int64_t step);
// "checkpoint-120" -> 120; nullopt for any other name.
std::optional<std::int64_t> checkpoint_step(std::string_view name);
// The names above, for lib/storage's remote checkpoints.
storage::CheckpointLayout checkpoint_layout();
// The save_total_limit rule (checkpoints_to_delete) as the names to keep, for remote rotation.
storage::KeepPolicy keep_policy(std::int64_t limit, std::function<std::string()> best);

// What a checkpoint holds besides the model: trainer_state.json (HF fields + hfkit's cursor).
struct CheckpointParts {
  nlohmann::ordered_json trainer_state;
  nlohmann::ordered_json scheduler;  // scheduler.json
  std::vector<std::pair<std::string, torch::Tensor>> rng;  // generator name -> state bytes
};

// Writes output_dir/checkpoint-<step>/ through a temp dir, renames it into place and then writes
// the completeness marker. Returns the final path. Throws Error(kCantCreate/kIo).
std::string write_checkpoint(const std::string& output_dir, std::int64_t step,
                             const model::SequenceClassifier& model, const AdamW& optimizer,
                             const CheckpointParts& parts, const std::string& tokenizer_dir);
// Size of each regular file directly in `dir`. Throws Error(kIo).
std::map<std::string, std::uintmax_t> file_sizes(const std::string& dir);
// Checks that `written` (file_sizes of a checkpoint as written) names every checkpoint file and
// that each is in `dir` with that size. Throws Error(kIo) naming the first that is not.
void verify_files(const std::string& dir, const std::map<std::string, std::uintmax_t>& written);
// Reads trainer_state.json, scheduler.json and rng_state.safetensors of a checkpoint directory.
// Throws Error(kNoInput/kDataErr).
CheckpointParts read_checkpoint_parts(const std::string& dir);
// Copies the tokenizer files that exist in `from` into `to` (atomically each).
void copy_tokenizer_files(const std::string& from, const std::string& to);
// Deletes what save_total_limit says must go (marker first, so a half-deleted one is not complete).
// Checkpoints for which `busy(path)` is true (still being uploaded) stay until a later rotation.
void rotate_checkpoints(const std::string& output_dir, std::int64_t limit, const std::string& keep_best,
                        const std::function<bool(const std::string&)>& busy = {});
// Removes leftover temp dirs (.checkpoint-*.tmp) and unmarked checkpoint dirs of killed runs.
void remove_incomplete_checkpoints(const std::string& output_dir);

// --sync-to: the remote copy of output_dir. Saved checkpoints go to a background storage::Uploader
// (training never waits for the network; an unreachable store only delays them), --resume auto
// fetches the newest complete remote checkpoint when it is newer than the local ones, and the
// final model directory is pushed to the URL root at the end. Not thread-safe (the loop's thread).
class RemoteSync {
 public:
  // Parses options.sync_to (Error(kUsage) when invalid) and starts the upload thread.
  explicit RemoteSync(const TrainOptions& options);
  ~RemoteSync();
  RemoteSync(const RemoteSync&) = delete;
  RemoteSync& operator=(const RemoteSync&) = delete;

  // Downloads the newest complete remote checkpoint into output_dir when its step is above
  // `local_newest` (-1: no local checkpoint). Returns whether one was downloaded. When the store
  // cannot be read: rethrows if there is no local checkpoint either (never a silent fresh start
  // beside newer remote ones), else warns and returns false.
  bool fetch_newer(std::int64_t local_newest);
  // For a run that starts over (--resume none or --overwrite-output-dir): throws Error(kUsage)
  // when the URL already holds complete checkpoints (rotation would mix two runs there). A store
  // that cannot be read is only a warning: uploads retry later anyway.
  void refuse_other_runs();
  // Makes output_dir/<name> exist locally, downloading it when missing and complete remotely
  // (the best checkpoint after a resume on another node). Returns false when it cannot.
  bool ensure_local(const std::string& name);
  // Queues a saved checkpoint for upload; `best` (a checkpoint path or "") is never rotated away.
  void saved(const std::string& dir, const std::string& best);
  // True while `dir` waits for or is in upload: local rotation must keep it.
  bool busy(const std::string& dir) const;
  // Waits for queued uploads; gives up (with a warning naming what is left) after a few failed
  // attempts in a row. Returns true when everything queued was uploaded.
  bool finish_uploads();
  // Pushes output_dir minus checkpoints and hidden temp dirs to the URL root, retrying. Throws
  // Error(kTempFail) naming the URL and the cause when it still fails.
  void push_final();

 private:
  const TrainOptions& options_;
  storage::Url url_;
  storage::Options storage_;
  storage::CheckpointLayout layout_ = checkpoint_layout();
  std::mutex best_mu_;  // best_ is read by the upload thread's rotation
  std::string best_;    // name of the best checkpoint, never rotated away
  std::unique_ptr<storage::Uploader> uploader_;
};

}  // namespace hf::train
