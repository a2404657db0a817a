// DistilBERT (HF modeling_distilbert.py): word + learned position embeddings (no token types),
// post-norm blocks with q_lin/k_lin/v_lin/out_lin attention (no dropout after out_lin) and
// lin1/lin2 feed-forward, and DistilBertForSequenceClassification's pre_classifier + ReLU +
// dropout(seq_classif_dropout) + classifier on the first token. LayerNorm eps is fixed at 1e-12.
#include <fmt/format.h>

#include "core/error.h"
#include "model/families.h"

namespace hf::model {
namespace {

namespace nn = torch::nn;

constexpr double kLayerNormEps = 1e-12;  // hard-coded in HF's DistilBERT

struct DistilBertConfig : ModelConfig {
  std::int64_t n_layers = 6;
  std::int64_t n_heads = 12;
  std::int64_t hidden_dim = 4 * 768;
  double dropout = 0.1;
  double attention_dropout = 0.1;
  std::string activation = "gelu";
  double seq_classif_dropout = 0.2;

  DistilBertConfig() {
    model_type = "distilbert";
    type_vocab_size = 0;
  }
  nlohmann::ordered_json to_json() const override {
    nlohmann::json j = common_json(*this, "DistilBertForSequenceClassification");
    j["dim"] = hidden_size;
    j["n_layers"] = n_layers;
    j["n_heads"] = n_heads;
    j["hidden_dim"] = hidden_dim;
    j["dropout"] = dropout;
    j["attention_dropout"] = attention_dropout;
    j["activation"] = activation;
    j["seq_classif_dropout"] = seq_classif_dropout;
    j["sinusoidal_pos_embds"] = false;
    return nlohmann::ordered_json(j);
  }
  std::unique_ptr<ModelConfig> clone() const override { return std::make_unique<DistilBertConfig>(*this); }
  std::shared_ptr<SequenceClassifier> make_model() const override;
};

nn::LayerNorm layer_norm(const DistilBertConfig& c) {
  return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(kLayerNormEps));
}

class EmbeddingsImpl : public nn::Module {
 public:
  explicit EmbeddingsImpl(const DistilBertConfig& c) {
    word_embeddings = register_module(
        "word_embeddings",
        embedding(nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
    position_embeddings = register_module(
        "position_embeddings", embedding(nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size)));
    norm = register_module("LayerNorm", layer_norm(c));
    dropout = register_module("dropout", nn::Dropout(c.dropout));
  }
  // input_ids [B, T] -> [B, T, H], or [R, H] for the real tokens of a packed layout.
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout) {
    const std::int64_t t = input_ids.size(1);
    const std::int64_t max_positions = position_embeddings->weight.size(0);
    if (t > max_positions)
      throw Error(ErrorKind::kDataErr,
                  fmt::format("sequence of {} tokens is longer than max_position_embeddings {}", t, max_positions));
    torch::Tensor x;
    if (layout.packed()) {
      // Row r of the flattened batch is position r % T of its text.
      x = word_embeddings(input_ids.reshape({-1}).index_select(0, layout.index)) +
          position_embeddings(layout.index.remainder(t));  // [R, H]
    } else {
      x = word_embeddings(input_ids) +
          position_embeddings(torch::arange(t, input_ids.options().dtype(torch::kLong)).unsqueeze(0));  // [B, T, H]
    }
    return dropout(norm(x));
  }

  nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  nn::LayerNorm norm{nullptr};
  nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Embeddings);

class MultiHeadSelfAttentionImpl : public nn::Module {
 public:
  explicit MultiHeadSelfAttentionImpl(const DistilBertConfig& c) : n_heads_(c.n_heads), dropout_p_(c.attention_dropout) {
    q_lin = register_module("q_lin", Dense(c.hidden_size, c.hidden_size));
    k_lin = register_module("k_lin", Dense(c.hidden_size, c.hidden_size));
    v_lin = register_module("v_lin", Dense(c.hidden_size, c.hidden_size));
    out_lin = register_module("out_lin", Dense(c.hidden_size, c.hidden_size));
  }
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout) {
    return out_lin(attend(q_lin(x), k_lin(x), v_lin(x), layout, n_heads_, is_training() ? dropout_p_ : 0.0));
  }
  torch::Tensor forward_first(const torch::Tensor& x, const torch::Tensor& first, const TokenLayout& layout) {
    return out_lin(attend_first(q_lin(first), k_lin(x), v_lin(x), layout, n_heads_, is_training() ? dropout_p_ : 0.0));
  }

  Dense q_lin{nullptr}, k_lin{nullptr}, v_lin{nullptr}, out_lin{nullptr};

 private:
  std::int64_t n_heads_;
  double dropout_p_;
};
TORCH_MODULE(MultiHeadSelfAttention);

class FFNImpl : public nn::Module {
 public:
  explicit FFNImpl(const DistilBertConfig& c) : activation_(hf::model::activation(c.activation)) {
    lin1 = register_module("lin1", Dense(c.hidden_size, c.hidden_dim));
    lin2 = register_module("lin2", Dense(c.hidden_dim, c.hidden_size));
    dropout = register_module("dropout", nn::Dropout(c.dropout));
  }
  torch::Tensor forward(const torch::Tensor& x) { return dropout(lin2(activation_(lin1(x)))); }

  Dense lin1{nullptr}, lin2{nullptr};
  nn::Dropout dropout{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> activation_;
};
TORCH_MODULE(FFN);

class TransformerBlockImpl : public nn::Module {
 public:
  explicit TransformerBlockImpl(const DistilBertConfig& c) {
    attention = register_module("attention", MultiHeadSelfAttention(c));
    sa_layer_norm = register_module("sa_layer_norm", layer_norm(c));
    ffn = register_module("ffn", FFN(c));
    output_layer_norm = register_module("output_layer_norm", layer_norm(c));
  }
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout) {  // [B, T, H] or [R, H]
    const torch::Tensor a = sa_layer_norm(attention(x, layout) + x);
    return output_layer_norm(ffn(a) + a);
  }
  torch::Tensor forward_first(const torch::Tensor& x, const TokenLayout& layout) {  // -> [B, H]
    const torch::Tensor first = layout.first(x);
    const torch::Tensor a = sa_layer_norm(attention->forward_first(x, first, layout) + first);
    return output_layer_norm(ffn(a) + a);
  }

  MultiHeadSelfAttention attention{nullptr};
  nn::LayerNorm sa_layer_norm{nullptr}, output_layer_norm{nullptr};
  FFN ffn{nullptr};
};
TORCH_MODULE(TransformerBlock);

class TransformerImpl : public nn::Module {
 public:
  explicit TransformerImpl(const DistilBertConfig& c) {
    layer = register_module("layer", nn::ModuleList());
    for (std::int64_t i = 0; i < c.n_layers; ++i) layer->push_back(TransformerBlock(c));
  }
  torch::Tensor forward(torch::Tensor x, const TokenLayout& layout) {  // [B, T, H] or [R, H]
    for (const auto& l : *layer) x = l->as<TransformerBlockImpl>()->forward(x, layout);
    return x;
  }
  // The first tokens' last hidden state [B, H]; the last block runs for them only where
  // last_layer_first_only allows (as BertEncoder::first_tokens).
  torch::Tensor first_tokens(torch::Tensor x, const TokenLayout& layout) {
    if (!last_layer_first_only(*this, layer->size(), layout)) return layout.first(forward(std::move(x), layout));
    const std::size_t last = layer->size() - 1;
    for (std::size_t i = 0; i < last; ++i) x = layer[i]->as<TransformerBlockImpl>()->forward(x, layout);
    return layer[last]->as<TransformerBlockImpl>()->forward_first(x, layout);
  }

  nn::ModuleList layer{nullptr};
};
TORCH_MODULE(Transformer);

class DistilBertModelImpl : public nn::Module {
 public:
  explicit DistilBertModelImpl(const DistilBertConfig& c) {
    embeddings = register_module("embeddings", Embeddings(c));
    transformer = register_module("transformer", Transformer(c));
  }
  // -> the first token's hidden state [B, H]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
    const TokenLayout layout = TokenLayout::of(attention_mask);
    return transformer->first_tokens(embeddings(input_ids, layout), layout);
  }

  Embeddings embeddings{nullptr};
  Transformer transformer{nullptr};
};
TORCH_MODULE(DistilBertModel);

class DistilBertForSequenceClassificationImpl : public SequenceClassifier {
 public:
  explicit DistilBertForSequenceClassificationImpl(DistilBertConfig c) : config_(std::move(c)) {
    distilbert = register_module("distilbert", DistilBertModel(config_));
    pre_classifier = register_module("pre_classifier", Dense(config_.hidden_size, config_.hidden_size));
    classifier = register_module("classifier", Dense(config_.hidden_size, config_.num_labels()));
    dropout = register_module("dropout", nn::Dropout(config_.seq_classif_dropout));
    init_all();
  }
  // token_type_ids are ignored: DistilBERT has no token types.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& /*token_type_ids*/) override {
    return classifier(dropout(torch::relu(pre_classifier(distilbert(input_ids, attention_mask)))));
  }
  const ModelConfig& config() const override { return config_; }
  ModelConfig& config() override { return config_; }
  std::string_view base_prefix() const override { return "distilbert."; }
  std::string_view label_layer() const override { return "classifier"; }
  void quantize(Quantization q) override {
    if (q == Quantization::kInt8) quantize_int8(*distilbert->transformer);
  }

  DistilBertModel distilbert{nullptr};
  Dense pre_classifier{nullptr}, classifier{nullptr};
  nn::Dropout dropout{nullptr};

 private:
  DistilBertConfig config_;
};

std::shared_ptr<SequenceClassifier> DistilBertConfig::make_model() const {
  return std::make_shared<DistilBertForSequenceClassificationImpl>(*this);
}

}  // namespace

std::unique_ptr<ModelConfig> parse_distilbert(const Json& j, const std::string& source) {
  auto c = std::make_unique<DistilBertConfig>();
  ConfigReader r(j, source);
  r.get("model_type", c->model_type);
  read_common(r, *c);
  r.get("dim", c->hidden_size);
  r.get("n_layers", c->n_layers);
  r.get("n_heads", c->n_heads);
  r.get("hidden_dim", c->hidden_dim);
  r.get("dropout", c->dropout);
  r.get("attention_dropout", c->attention_dropout);
  r.get("activation", c->activation);
  r.get("seq_classif_dropout", c->seq_classif_dropout);
  bool sinusoidal = false;
  r.get("sinusoidal_pos_embds", sinusoidal);
  if (sinusoidal) r.fail("sinusoidal_pos_embds", "sinusoidal position embeddings are not supported (only learned)");
  if (c->n_heads >= 1 && c->hidden_size % c->n_heads != 0)
    r.fail("n_heads", fmt::format("dim {} is not a multiple of {} heads", c->hidden_size, c->n_heads));
  try {
    activation(c->activation);
  } catch (const Error& e) {
    r.fail("activation", e.what());
  }
  finish_common(r, *c, {{"dim", c->hidden_size}, {"n_layers", c->n_layers}, {"n_heads", c->n_heads},
                        {"hidden_dim", c->hidden_dim}});
  return c;
}

}  // namespace hf::model
