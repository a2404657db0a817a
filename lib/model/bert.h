// BERT in libtorch (HF modeling_bert.py's modules, names and initialisation): the config, the
// encoder that RoBERTa, XLM-RoBERTa and ELECTRA reuse, and BertForSequenceClassification.
// Absolute position embeddings only; no decoder / cross-attention parts
// (BertForSequenceClassification never uses them).
#pragma once

#include "model/model.h"

namespace hf::model {

// The fields of HF's BertConfig this model uses, beyond ModelConfig's. RoBERTa, XLM-RoBERTa and
// ELECTRA configs derive from it (their encoders are BERT's).
struct BertConfig : ModelConfig {
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";  // HF's ACT2FN names: gelu, gelu_new, relu, silu, ... (bert.cpp)
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  std::optional<double> classifier_dropout;  // none: hidden_dropout_prob
  double layer_norm_eps = 1e-12;

  BertConfig() { model_type = "bert"; }
  // Head dimension; hidden_size / num_attention_heads.
  std::int64_t head_dim() const { return hidden_size / num_attention_heads; }

  // From a parsed config.json with model_type "bert" (or none). `source` names the file in errors.
  // Throws Error(kConfig) as ModelConfig::from_json, and for a position_embedding_type other than
  // absolute or a decoder.
  static BertConfig from_json(const nlohmann::ordered_json& j, const std::string& source);
  // From `path` = a config.json or a model directory holding a BERT config.
  static BertConfig load(const std::string& path);
  nlohmann::ordered_json to_json() const override;
  std::unique_ptr<ModelConfig> clone() const override { return std::make_unique<BertConfig>(*this); }
  std::shared_ptr<SequenceClassifier> make_model() const override;

 protected:
  // to_json()'s content with keys sorted, for the families deriving from BERT to add theirs.
  nlohmann::json sorted_json(std::string_view architecture) const;
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
  torch::Tensor starts;  // [B] int64 row of each text's position 0 in a packed x; undefined: not packed,
                         // or some text has padding at position 0 (left padding)
  std::int64_t batch = 0, length = 0;
  bool packed() const { return index.defined(); }

  // The layout of a batch: packed when attention_mask (undefined: no padding) has padding.
  static TokenLayout of(const torch::Tensor& attention_mask);
  // x [R, H] of a packed layout -> [B, T, H] with zero rows for padding; x itself otherwise.
  torch::Tensor unpack(const torch::Tensor& x) const;
  // x [R, H] or [B, T, H] -> [B, H]: each text's position 0 (the classifier's token).
  torch::Tensor first(const torch::Tensor& x) const;
  // Whether every text's position 0 is a real token (no left padding).
  bool first_is_real() const { return !packed() || starts.defined(); }
  // Rows of this layout's shape ([R, H] packed, or [B, T, H]) -> [B, N, T, D] attention heads;
  // packed rows are scattered into a zero-padded [B * T, H] first.
  torch::Tensor split_heads(const torch::Tensor& y, std::int64_t num_heads) const;
  // The inverse for a context [B, N, T, D] -> rows of this layout's shape, [R, H] or [B, T, H].
  torch::Tensor merge_heads(const torch::Tensor& context) const;
};

// Multi-head attention through scaled_dot_product_attention (fused kernels on CPU and CUDA; equal
// to HF's eager softmax path) on projected q, k, v of the layout's shape ([B, T, H] or packed
// [R, H]) -> context of the same shape. dropout_p applies to the attention weights.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const TokenLayout& layout,
                     std::int64_t num_heads, double dropout_p);
// The same for the queries of each text's first token only: q [B, H] -> context [B, H]; k and v
// as above.
torch::Tensor attend_first(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const TokenLayout& layout, std::int64_t num_heads, double dropout_p);

// Whether an encoder of `layers` layers may run its last one for each text's first token only
// (what the classification heads read). Not while training: hf-train's updates are compared bit for
// bit with HF's, and dropout draws its masks over every row. Not when a text is padded at position 0
// (not hfkit's own batches): its first row is not its first token.
inline bool last_layer_first_only(const torch::nn::Module& encoder, std::size_t layers, const TokenLayout& layout) {
  return !encoder.is_training() && layers > 0 && layout.first_is_real();
}

class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertConfig& c);
  // input_ids, token_type_ids [B, T] int64 -> [B, T, H], or [R, H] for the real tokens of a
  // packed layout. position_ids [B, T] int64, undefined: 0..T-1 (RoBERTa passes its own, checked
  // by the caller). Throws Error(kDataErr) when T exceeds max_position_embeddings.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        const TokenLayout& layout, const torch::Tensor& position_ids = {});

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
  // The context of the first tokens only, first = layout.first(x): -> [B, H].
  torch::Tensor forward_first(const torch::Tensor& x, const torch::Tensor& first, const TokenLayout& layout);

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
  torch::Tensor forward_first(const torch::Tensor& x, const torch::Tensor& first, const TokenLayout& layout);  // [B, H]

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
  // The layer's output at each text's first token only: [B, H].
  torch::Tensor forward_first(const torch::Tensor& x, const TokenLayout& layout);

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

class BertEncoderImpl : public torch::nn::Module {
 public:
  explicit BertEncoderImpl(const BertConfig& c);
  torch::Tensor forward(torch::Tensor x, const TokenLayout& layout);  // [B, T, H] or [R, H]
  // The last hidden state of each text's first token, [B, H]: what every classification head of
  // the BERT-like families reads. In eval mode the last layer runs for those tokens only (keys and
  // values still come from every token), which skips most of its work; the values are the same.
  torch::Tensor first_tokens(torch::Tensor x, const TokenLayout& layout);

  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

class BertPoolerImpl : public torch::nn::Module {
 public:
  explicit BertPoolerImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& first);  // first token [B, H] -> tanh(dense(first)) [B, H]

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

// HF's BertForSequenceClassification.
class BertForSequenceClassificationImpl : public SequenceClassifier {
 public:
  explicit BertForSequenceClassificationImpl(BertConfig c);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {}) override;
  const BertConfig& config() const override { return config_; }
  BertConfig& config() override { return config_; }
  std::string_view base_prefix() const override { return "bert."; }
  std::string_view label_layer() const override { return "classifier"; }
  void quantize(Quantization q) override;

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  Dense classifier{nullptr};

 private:
  BertConfig config_;
};
TORCH_MODULE(BertForSequenceClassification);

}  // namespace hf::model
