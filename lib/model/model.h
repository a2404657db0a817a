// BERT encoder + sequence-classification head in libtorch, built from a Hugging Face config.json,
// with HF's module names (so safetensors keys map 1:1 both ways), HF's weight initialisation for
// keys a checkpoint lacks, HF's choice of loss, and from_pretrained / save_pretrained over HF model
// directories (model.safetensors or a sharded index). Absolute position embeddings only; no
// decoder / cross-attention parts (BertForSequenceClassification never uses them).
#pragma once

#include "core/error.h"
#include "model/dense.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
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

// The fields of HF's BertConfig this model uses. Keys it does not know are kept in `extra` and
// written back by to_json(), so a config survives load + save.
struct BertConfig {
  std::int64_t vocab_size = 30522;
  std::int64_t hidden_size = 768;
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";  // HF's ACT2FN names: gelu, gelu_new, relu, silu, ... (bert.cpp)
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  std::optional<double> classifier_dropout;  // none: hidden_dropout_prob
  std::int64_t max_position_embeddings = 512;
  std::int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  std::int64_t pad_token_id = 0;
  // id2label in id order; num_labels() is its size. HF's default is 2 labels LABEL_0, LABEL_1.
  std::vector<std::string> id2label{"LABEL_0", "LABEL_1"};
  std::optional<ProblemType> problem_type;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();

  std::int64_t num_labels() const { return static_cast<std::int64_t>(id2label.size()); }
  // Sets id2label to LABEL_0..LABEL_{n-1}, as HF's num_labels setter does.
  void set_num_labels(std::int64_t n);
  // Head dimension; hidden_size / num_attention_heads.
  std::int64_t head_dim() const { return hidden_size / num_attention_heads; }

  // From a parsed config.json. `source` names the file in errors. Throws Error(kConfig: a file
  // that configures a model, exit 78) for a
  // wrong type, an impossible value (hidden size not divisible by heads, num_labels < 1, an
  // unsupported hidden_act or position_embedding_type, single_label with 1 label).
  static BertConfig from_json(const nlohmann::ordered_json& j, const std::string& source);
  // From `path` = a config.json or a model directory. Throws Error(kNoInput) when missing,
  // Error(kConfig) when it is not valid JSON or not a BERT config.
  static BertConfig load(const std::string& path);
  // HF-compatible config.json content: every field, id2label/label2id, model_type "bert",
  // architectures ["BertForSequenceClassification"], dtype "float32".
  nlohmann::ordered_json to_json() const;
};

// Modules. Names registered with register_module are HF's attribute names, so
// named_parameters() yields exactly HF's state-dict keys. Shapes: B batch, T tokens, H hidden,
// N heads, D head dim (H = N * D), I intermediate, L labels, R real (non-padding) tokens.

// Where the real tokens of a padded [B, T] batch are. When a batch has padding, the token-wise
// layers (embeddings, projections, feed-forward, LayerNorm, dropout: almost all the FLOPs) run on
// the R real tokens only, as [R, H] rows; only attention scatters them back to [B, T] around its
// fused kernel. Dynamic padding still pads a batch to its longest text, so this skips work in
// proportion to the padding; the results are those of the padded computation (padding never
// reaches a real token through the mask).
struct TokenLayout {
  torch::Tensor mask;   // [B, 1, 1, T] bool, true = attend; undefined: no padding
  torch::Tensor index;  // [R] int64 rows of the flattened [B * T] batch; undefined: x is [B, T, H]
  std::int64_t batch = 0, length = 0;
  bool packed() const { return index.defined(); }
};

class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertConfig& c);
  // input_ids, token_type_ids [B, T] int64 -> [B, T, H], or [R, H] for the real tokens of a
  // packed layout. Throws Error(kDataErr) when T exceeds max_position_embeddings.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        const TokenLayout& layout);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // registered as "LayerNorm"
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

class BertSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit BertSelfAttentionImpl(const BertConfig& c);
  // x [B, T, H] -> context [B, T, H], or x [R, H] -> [R, H] when layout.packed().
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout);

  Dense query{nullptr}, key{nullptr}, value{nullptr};

 private:
  std::int64_t num_heads_;
  double dropout_p_;
};
TORCH_MODULE(BertSelfAttention);

// The projection after attention, or after the feed-forward block: dense, dropout, residual, norm.
class BertResidualOutputImpl : public torch::nn::Module {
 public:
  BertResidualOutputImpl(const BertConfig& c, std::int64_t in_features);
  // x [B, T, in_features], residual [B, T, H] -> [B, T, H].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  Dense dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // registered as "LayerNorm"
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout);  // [B, T, H] or [R, H]

  BertSelfAttention self_attention{nullptr};  // registered as "self"
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

class BertIntermediateImpl : public torch::nn::Module {
 public:
  explicit BertIntermediateImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, H] -> [B, T, I]

  Dense dense{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> activation_;
};
TORCH_MODULE(BertIntermediate);

class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout);  // [B, T, H] or [R, H]

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

class BertEncoderImpl : public torch::nn::Module {
 public:
  explicit BertEncoderImpl(const BertConfig& c);
  torch::Tensor forward(torch::Tensor x, const TokenLayout& layout);  // [B, T, H] or [R, H]

  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

class BertPoolerImpl : public torch::nn::Module {
 public:
  explicit BertPoolerImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& sequence);  // [B, T, H] -> tanh(dense(first token)) [B, H]

  Dense dense{nullptr};
};
TORCH_MODULE(BertPooler);

class BertModelImpl : public torch::nn::Module {
 public:
  explicit BertModelImpl(const BertConfig& c);
  // input_ids, attention_mask (1 = token, 0 = padding), token_type_ids [B, T] -> pooled [B, H].
  // An undefined token_type_ids means all zeros; an undefined attention_mask means all ones. A
  // batch with padding runs on its real tokens only (TokenLayout).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids);

  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertPooler pooler{nullptr};
};
TORCH_MODULE(BertModel);

// HF's BertForSequenceClassification. forward() is thread-safe in eval mode under NoGradGuard
// (hf-predict --serve calls it from several threads).
class BertForSequenceClassificationImpl : public torch::nn::Module {
 public:
  // Every parameter initialised as HF's _init_weights does (normal(0, initializer_range) weights,
  // zero biases, padding row of the word embeddings zero, LayerNorm 1/0), drawing from torch's
  // default generator (seed it with torch::manual_seed for reproducible heads).
  explicit BertForSequenceClassificationImpl(BertConfig c);
  // input_ids [B, T] int64, attention_mask [B, T] (any integer or bool dtype), token_type_ids [B, T]
  // int64 -> logits [B, num_labels].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {});
  const BertConfig& config() const { return config_; }
  BertConfig& config() { return config_; }
  // Dynamic int8 on the encoder's Dense layers (attention projections and feed-forward: almost all
  // the FLOPs); embeddings, LayerNorm, pooler and classifier stay fp32. kNone does nothing.
  // Requires eval mode, on the CPU; throws as DenseImpl::quantize_int8. Afterwards train(true)
  // throws Error(kConfig).
  void quantize(Quantization q);
  // Re-draws one parameter (by HF name) as HF initialises it. Throws Error(kInternal) for an
  // unknown name.
  void init_parameter(const std::string& name);

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  Dense classifier{nullptr};

 private:
  void init_tensor(const std::string& name, torch::Tensor& p);
  BertConfig config_;
};
TORCH_MODULE(BertForSequenceClassification);

// HF's choice of loss: config.problem_type when set; otherwise regression when num_labels == 1,
// single-label when labels are integers, multi-label otherwise.
ProblemType resolve_problem_type(const BertConfig& config, const torch::Tensor& labels);
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

// Loads an HF model directory: config.json plus model.safetensors or model.safetensors.index.json
// (shards), keys with or without the "bert." prefix, F32/F16/BF16 tensors (converted to F32). Logs
// one warning listing missing keys and one listing unexpected keys (the old position_ids buffer is
// skipped silently, as HF does). The model is on the CPU in eval mode; move it with ->to().
// Throws Error(kNoInput) when the directory, config.json or weights are missing (a directory with
// only pytorch_model.bin gets a message saying how to convert it), Error(kConfig) for a bad
// config, Error(kDataErr) for a corrupt checkpoint or NaN/inf weights (naming the tensor),
// ShapeMismatch for a tensor of another shape (see LoadOptions), Error(kUsage) for options that contradict each other
// (num_labels vs labels).
BertForSequenceClassification from_pretrained(const std::string& dir, const LoadOptions& options = {},
                                              LoadReport* report = nullptr);

// Writes `dir`/config.json and `dir`/model.safetensors (HF names with the "bert." prefix,
// contiguous F32, metadata {"format": "pt"}), each atomically; creates `dir` if needed. Reads the
// parameters from whatever device they are on. Throws Error(kCantCreate) / Error(kIo).
void save_pretrained(const BertForSequenceClassificationImpl& model, const std::string& dir);

}  // namespace hf::model
