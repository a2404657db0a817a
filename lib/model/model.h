// The family-neutral model API: a sequence classifier built from a Hugging Face config.json, with
// HF's module names (so safetensors keys map 1:1 both ways), HF's weight initialisation for keys a
// checkpoint lacks, HF's choice of loss, and from_pretrained / save_pretrained over HF model
// directories (model.safetensors or a sharded index) that dispatch on config.json's `model_type`.
// Families (one .cpp each, listed in families.h): bert, distilbert, roberta, xlm-roberta, electra.
// Callers (lib/train, lib/predict) see only this header; a family's modules live in its own
// header (bert.h) or .cpp, so adding one does not rebuild them.
#pragma once

#include "core/error.h"
#include "model/dense.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hf::model {

// HF's `problem_type` values.
enum class ProblemType { kSingleLabelClassification, kMultiLabelClassification, kRegression };
std::string_view to_string(ProblemType type);  // "single_label_classification", ...
// Throws Error(kConfig) for any other string.
ProblemType parse_problem_type(std::string_view name);
// The activation HF's ACT2FN maps `hidden_act` to. Throws Error(kDataErr) for a name it lacks.
std::function<torch::Tensor(const torch::Tensor&)> activation(std::string_view hidden_act);
// Whether a parameter (HF name) belongs to a LayerNorm: initialised 1/0 and, in HF's Trainer,
// exempt from weight decay. BERT-style names say "LayerNorm", DistilBERT's "sa_layer_norm".
bool is_layer_norm(std::string_view name);

class SequenceClassifier;

// What every family's config.json holds that the rest of hfkit needs. Each family derives its own
// (BertConfig, ...); keys it does not know are kept in `extra` and written back by to_json(), so a
// config survives load + save.
struct ModelConfig {
  std::string model_type;  // config.json's "model_type": "bert", "roberta", ...
  std::int64_t vocab_size = 30522;
  std::int64_t hidden_size = 768;
  std::int64_t max_position_embeddings = 512;
  std::int64_t type_vocab_size = 2;  // 0: the family has no token types (token_type_ids are ignored)
  std::int64_t pad_token_id = 0;
  double initializer_range = 0.02;
  // id2label in id order; num_labels() is its size. HF's default is 2 labels LABEL_0, LABEL_1.
  std::vector<std::string> id2label{"LABEL_0", "LABEL_1"};
  std::optional<ProblemType> problem_type;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();

  ModelConfig() = default;
  ModelConfig(const ModelConfig&) = default;
  ModelConfig& operator=(const ModelConfig&) = default;
  virtual ~ModelConfig() = default;

  std::int64_t num_labels() const { return static_cast<std::int64_t>(id2label.size()); }
  // Sets id2label to LABEL_0..LABEL_{n-1}, as HF's num_labels setter does.
  void set_num_labels(std::int64_t n);
  // The most tokens one input may have (special tokens included): max_position_embeddings, less
  // the positions RoBERTa reserves below padding_idx + 1.
  virtual std::int64_t max_length() const { return max_position_embeddings; }
  // HF-compatible config.json content: every field, id2label/label2id, model_type, architectures
  // ["<Family>ForSequenceClassification"], dtype "float32".
  virtual nlohmann::ordered_json to_json() const = 0;
  virtual std::unique_ptr<ModelConfig> clone() const = 0;
  // A fresh model of this family, every parameter initialised as HF's _init_weights does, drawing
  // from torch's default generator (seed it with torch::manual_seed for reproducible heads).
  virtual std::shared_ptr<SequenceClassifier> make_model() const = 0;

  // From a parsed config.json, by its "model_type". `source` names the file in errors. Throws
  // Error(kConfig: a file that configures a model, exit 78) for a missing or unknown model_type (the
  // families named in families.h but not built yet say "not supported yet"), a wrong type, an
  // impossible value (hidden size not divisible by heads, num_labels < 1, an unsupported
  // hidden_act or option of the family, single_label with 1 label).
  static std::unique_ptr<ModelConfig> from_json(const nlohmann::ordered_json& j, const std::string& source);
  // From `path` = a config.json or a model directory. Throws Error(kNoInput) when missing,
  // Error(kConfig) when it is not valid JSON or not a supported config.
  static std::unique_ptr<ModelConfig> load(const std::string& path);
};

// HF's <Family>ForSequenceClassification: an encoder plus its head, logits [B, num_labels].
// named_parameters() yields exactly HF's state-dict keys. forward() is thread-safe in eval mode
// under NoGradGuard (hf-predict --serve calls it from several threads).
class SequenceClassifier : public torch::nn::Module {
 public:
  // input_ids [B, T] int64, attention_mask [B, T] (any integer or bool dtype; undefined: all
  // ones), token_type_ids [B, T] int64 (undefined: all zeros; ignored by families without token
  // types) -> logits [B, num_labels]. Throws Error(kDataErr) when T exceeds config().max_length().
  virtual torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                                const torch::Tensor& token_type_ids = {}) = 0;
  virtual const ModelConfig& config() const = 0;
  virtual ModelConfig& config() = 0;
  // HF's base_model_prefix with its dot ("bert.", "roberta.", ...): the encoder's keys start with
  // it in a classifier checkpoint and lack it in a bare encoder's.
  virtual std::string_view base_prefix() const = 0;
  // The layer whose output size is num_labels ("classifier", "classifier.out_proj"): what a head
  // for other labels re-initialises (its ".weight" and ".bias").
  virtual std::string_view label_layer() const = 0;
  // Dynamic int8 on the encoder's Dense layers (attention projections and feed-forward: almost all
  // the FLOPs); embeddings, LayerNorm and the head stay fp32. kNone does nothing. Requires eval
  // mode, on the CPU; throws as DenseImpl::quantize_int8. Afterwards train(true) throws
  // Error(kConfig).
  virtual void quantize(Quantization q) = 0;
  // Re-draws one parameter (by HF name) as HF initialises it. Throws Error(kInternal) for an
  // unknown name.
  void init_parameter(const std::string& name);

 protected:
  // HF _init_weights for one parameter: LayerNorm 1/0, Linear and Embedding N(0,
  // initializer_range) with zero bias and a zero padding row in the word embeddings. Families
  // with more padding rows (RoBERTa's positions) add theirs.
  virtual void init_tensor(const std::string& name, torch::Tensor& p);
  // init_tensor on every parameter; each family's constructor ends with it.
  void init_all();
};

// HF's choice of loss: config.problem_type when set; otherwise regression when num_labels == 1,
// single-label when labels are integers, multi-label otherwise.
ProblemType resolve_problem_type(const ModelConfig& config, const torch::Tensor& labels);
// Mean loss: cross-entropy (logits [B, L], labels [B] int64), BCE-with-logits (labels [B, L]
// float), MSE (num_labels 1: logits [B, 1] vs labels [B]; otherwise [B, L] vs [B, L]).
torch::Tensor classification_loss(ProblemType type, const torch::Tensor& logits, const torch::Tensor& labels);

struct LoadOptions {
  // Overrides of config.json, as from_pretrained(..., num_labels=, id2label=, problem_type=).
  std::optional<std::int64_t> num_labels;  // LABEL_0.. names unless `labels` is given
  std::vector<std::string> labels;         // id2label in id order
  std::optional<ProblemType> problem_type;
  // A checkpoint tensor whose shape differs from the model's (a 3-class head loaded as 2-class)
  // is an error unless this is set; then it is re-initialised and listed, as HF does.
  bool ignore_mismatched_sizes = false;
  // false: the weights the checkpoint provides are not drawn first (SkipInit, HF's no_init_weights);
  // those it lacks are still initialised, but from another point of torch's random stream. For
  // inference, where drawing MiniLM's weights is ~0.25 s of a one-record run. Training keeps true,
  // so that a seeded run draws a new head exactly as before.
  bool init_weights = true;
};

// What loading found, with HF names: keys the model has but the checkpoint lacks (initialised
// fresh), keys the checkpoint has but the model lacks (ignored), shape mismatches (re-initialised).
struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;
};

// A checkpoint tensor whose shape is not the model's (kDataErr). Typed so that a caller can tell
// "the head has another size" from every other corrupt-checkpoint error about the same tensor.
class ShapeMismatch : public Error {
 public:
  ShapeMismatch(const Where& where, std::string_view message, std::string parameter)
      : Error(ErrorKind::kDataErr, where, message), parameter_(std::move(parameter)) {}
  const std::string& parameter() const { return parameter_; }  // the model's name, "classifier.weight"

 private:
  std::string parameter_;
};

// Loads an HF model directory of any supported family: config.json plus model.safetensors or
// model.safetensors.index.json (shards), keys with or without the family's base prefix
// ("bert.", ...), F32/F16/BF16 tensors (converted to F32). Logs one warning listing missing keys
// and one listing unexpected keys (the old position_ids buffer is skipped silently, as HF does).
// The model is on the CPU in eval mode; move it with ->to().
// Throws Error(kNoInput) when the directory, config.json or weights are missing (a directory with
// only pytorch_model.bin gets a message saying how to convert it), Error(kConfig) for a bad or
// unsupported config, Error(kDataErr) for a corrupt checkpoint or NaN/inf weights (naming the
// tensor), ShapeMismatch for a tensor of another shape (see LoadOptions), Error(kUsage) for
// options that contradict each other (num_labels vs labels).
std::shared_ptr<SequenceClassifier> from_pretrained(const std::string& dir, const LoadOptions& options = {},
                                                    LoadReport* report = nullptr);

// Writes `dir`/config.json and `dir`/model.safetensors (HF names with the base prefix, contiguous
// F32, metadata {"format": "pt"}), each atomically; creates `dir` if needed. Reads the parameters
// from whatever device they are on. Throws Error(kCantCreate) / Error(kIo).
void save_pretrained(const SequenceClassifier& model, const std::string& dir);

}  // namespace hf::model
