// Inference with a fine-tuned model directory: texts (or text pairs) -> tokenized, length-sorted,
// dynamically padded batches -> logits -> labels and scores, callable from several threads (the
// batch tool and, later, a server's dynamic batcher); and hf-predict's streaming JSONL driver.
// Heads as HF reads them: softmax for single-label, sigmoid + per-label threshold for multi-label,
// the raw value for regression. No torch in this header: the model lives behind the Predictor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/error.h"

namespace hf::predict {

// HF's problem_type, as the predictor applies it.
enum class Task { kSingleLabel, kMultiLabel, kRegression };

struct PredictorOptions {
  std::string device = "auto";  // auto (CUDA when available, logged) | cpu | cuda | cuda:N
  // Tokens per text incl. special tokens; longer texts are truncated (longest_first for pairs).
  // 0: the model's max_position_embeddings.
  std::size_t max_length = 0;
  std::size_t batch_size = 32;  // texts per forward pass
  // > 0: torch's intra-op threads (a process-wide setting) and the tokenizer pool's size.
  // 0: the pool gets every CPU this process may run on (its affinity mask), torch its own default
  // (a thread per physical core) capped at that count.
  int threads = 0;
  // CPU only: how many batches run at once, each on threads / parallel_batches of torch's threads.
  // Small GEMMs on one core each waste less in thread hand-offs than one batch split over every
  // core (bench/README.md: +5-9% fp32, +10-20% int8 on 2 cores), at the cost of that many batches'
  // activations in memory and a longer wait for each batch. 0: auto, the largest divisor of the
  // thread count up to 4 (so on 2 cores, 2 batches of one thread each). 1: one batch at a time over
  // every thread (a server's setting: it waits on each batch). Must divide torch's thread count;
  // Error(kUsage) else.
  int parallel_batches = 0;
  // Multi-label decision thresholds: "0.5" for every label, or "a=0.3,b=0.7" per label, or both
  // ("0.4,a=0.3": a bare number is the default). Empty: 0.5. Only multi-label models take one.
  std::string threshold;
  // True: a stop signal (SIGTERM...) ends predict() between batches (batch mode stops promptly).
  // A server sets false: it drains on a signal, answering what it already accepted.
  bool stop_on_signal = true;
  // "none" (fp32) | "int8": dynamic int8 of the encoder's Linear layers on fbgemm (CPU only;
  // model::SequenceClassifier::quantize). With device "auto", int8 picks the CPU.
  std::string quantize = "none";
  // The dtype of the weights and activations, end to end (HF's torch_dtype names): "auto" (bfloat16
  // on a CUDA device with bf16 tensor cores, else float32) | "float32" | "bfloat16" | "float16".
  // Logits are read back as float32 either way. Half dtypes and int8 exclude each other.
  std::string dtype = "auto";
};

// What one text got. `error` non-empty means this input could not be predicted (e.g. invalid
// UTF-8) and nothing else is set: one bad input never fails the others of its batch.
struct Prediction {
  std::int64_t label = -1;              // single-label: argmax class id
  std::vector<std::int64_t> labels;     // multi-label: ids whose probability is above their threshold
  std::vector<float> scores;            // per label: softmax / sigmoid probability; regression: raw values
  std::vector<float> logits;            // per label: the head's raw output (a server's function_to_apply)
  std::size_t tokens = 0;               // tokens fed to the model (special tokens included)
  bool truncated = false;               // the text was cut to max_length
  std::string error;
};

// A loaded model + tokenizer. predict() is thread-safe: several threads may call it at once
// (forward runs in eval mode under inference mode; the tokenizer pool is used by one caller at a
// time, the others tokenize on their own thread).
class Predictor {
 public:
  // Loads `model_dir` (config.json, model.safetensors, tokenizer files) onto the chosen device.
  // Throws Error(kNoInput) when the directory, weights or tokenizer are missing, Error(kDataErr)
  // when the weights are malformed or hold NaN/inf, Error(kConfig) when config.json or the
  // tokenizer files are, Error(kUsage) for a bad threshold spec (unknown label name,
  // value outside [0, 1], a threshold for a model that is not multi-label), device string,
  // quantize or dtype value, Error(kConfig) for int8 on a CUDA device or with a half dtype, Error(kUnavailable) when CUDA is
  // asked for and absent or int8 is asked for on a CPU fbgemm cannot run on.
  Predictor(const std::string& model_dir, const PredictorOptions& options);
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;

  // One Prediction per text, in input order. Texts are sorted by token count internally and run
  // in batches of batch_size padded to their longest text; per-text problems land in
  // Prediction::error. A non-finite model output (NaN/inf) throws Error(kDataErr); a stop signal
  // between batches throws Cancelled (core/signals.h check_stop). Requires: `pairs` empty (single texts) or as long as `texts` (the second
  // sequence of each pair); Error(kInternal) otherwise.
  std::vector<Prediction> predict(std::span<const std::string_view> texts,
                                  std::span<const std::string_view> pairs = {}) const;

  Task task() const;
  const std::vector<std::string>& labels() const;  // id2label, id order
  std::size_t max_length() const;
  std::string device() const;  // "cpu", "cuda:0"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "a=0.3,b=0.7" / "0.5" / "0.4,a=0.3" -> one threshold per label (default 0.5). Throws
// Error(kUsage) naming the bad part.
std::vector<float> parse_thresholds(std::string_view spec, std::span<const std::string> labels);

// The prediction's fields as batch mode writes them into a record (see run_batch): `field` gets the
// label name(s) or value(s), "score" its probability, with `scores` also {label: probability}.
// hf-predict --serve's JSON Lines answers go through this too, so both modes write the same record.
void add_prediction(nlohmann::ordered_json& record, const std::string& field, const Prediction& p,
                    const std::vector<std::string>& labels, Task task, bool scores);
// A probability as the shortest decimal that reads back as the same float ("0.97312").
double shortest(float v);

// What hf-predict does; the options mirror its flags (see tools/hf-predict/README.md).
struct BatchOptions {
  std::string model;               // model directory
  std::string input = "-";         // path or "-" (stdin)
  std::string output = "-";        // path (written atomically) or "-" (stdout)
  std::string format = "jsonl";    // jsonl | lines
  std::string text_field = "text";
  std::string text_pair_field;     // empty: single texts
  // The field the predicted label goes to. Not `label`: that is the reference hf-eval compares
  // against, passed through from the input like every other field.
  std::string prediction_field = "prediction";
  bool scores = false;             // add "scores": {label: probability}
  std::size_t window = 2048;       // records read, sorted and predicted together (bounds memory)
  std::string on_bad_record = "error";  // error | skip
  PredictorOptions predictor;
};

// Reads records, predicts them window by window, writes one JSON object per record in input
// order: every input field, then `prediction_field` (default "prediction": the label name; list
// of names for multi-label; number, or list of numbers, for regression), "score" (probability of the prediction; for multi-label the
// list of the predicted labels' probabilities; absent for regression) and with `scores`
// {label: probability} (classification only). Returns the exit status (0). Throws hf::Error
// (kDataErr "file:line: field "text": missing"; with on_bad_record skip such records are
// logged, counted and left out), hf::BrokenPipe when stdout's reader goes away.
Outcome run_batch(const BatchOptions& options);

}  // namespace hf::predict
