// ELECTRA's discriminator (HF modeling_electra.py): BERT's embeddings at embedding_size, a
// projection to hidden_size when the two differ (embeddings_project), BERT's encoder, no pooler,
// and ElectraClassificationHead (dense + gelu + out_proj on the first token).
#include <fmt/format.h>

#include "core/error.h"
#include "model/families.h"

namespace hf::model {
namespace {

namespace nn = torch::nn;

struct ElectraConfig : BertConfig {
  std::int64_t embedding_size = 128;

  nlohmann::ordered_json to_json() const override {
    nlohmann::json j = sorted_json("ElectraForSequenceClassification");
    j["embedding_size"] = embedding_size;
    return nlohmann::ordered_json(j);
  }
  std::unique_ptr<ModelConfig> clone() const override { return std::make_unique<ElectraConfig>(*this); }
  std::shared_ptr<SequenceClassifier> make_model() const override;
};

// BERT's embedding modules built at embedding_size.
BertConfig embedding_config(const ElectraConfig& c) {
  BertConfig e = c;
  e.hidden_size = c.embedding_size;
  return e;
}

class ElectraClassificationHeadImpl : public nn::Module {
 public:
  explicit ElectraClassificationHeadImpl(const BertConfig& c) {
    dense = register_module("dense", Dense(c.hidden_size, c.hidden_size));
    dropout = register_module("dropout", nn::Dropout(c.classifier_dropout.value_or(c.hidden_dropout_prob)));
    out_proj = register_module("out_proj", Dense(c.hidden_size, c.num_labels()));
  }
  // first-token features [B, H] -> logits [B, L]. Always exact gelu, whatever hidden_act says (as HF).
  torch::Tensor forward(const torch::Tensor& first) {
    return out_proj(dropout(torch::gelu(dense(dropout(first)))));
  }

  Dense dense{nullptr}, out_proj{nullptr};
  nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ElectraClassificationHead);

class ElectraModelImpl : public nn::Module {
 public:
  explicit ElectraModelImpl(const ElectraConfig& c) {
    embeddings = register_module("embeddings", BertEmbeddings(embedding_config(c)));
    if (c.embedding_size != c.hidden_size)
      embeddings_project = register_module("embeddings_project", Dense(c.embedding_size, c.hidden_size));
    encoder = register_module("encoder", BertEncoder(c));
  }
  // -> the first token's hidden state [B, H]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids) {
    const torch::Tensor types = token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids);
    const TokenLayout layout = TokenLayout::of(attention_mask);
    torch::Tensor x = embeddings(input_ids, types, layout);  // [B, T, E] or [R, E]
    if (!embeddings_project.is_empty()) x = embeddings_project(x);
    return encoder->first_tokens(x, layout);  // [B, H]
  }

  BertEmbeddings embeddings{nullptr};
  Dense embeddings_project{nullptr};
  BertEncoder encoder{nullptr};
};
TORCH_MODULE(ElectraModel);

class ElectraForSequenceClassificationImpl : public SequenceClassifier {
 public:
  explicit ElectraForSequenceClassificationImpl(ElectraConfig c) : config_(std::move(c)) {
    electra = register_module("electra", ElectraModel(config_));
    classifier = register_module("classifier", ElectraClassificationHead(config_));
    init_all();
  }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids) override {
    return classifier(electra(input_ids, attention_mask, token_type_ids));
  }
  const ModelConfig& config() const override { return config_; }
  ModelConfig& config() override { return config_; }
  std::string_view base_prefix() const override { return "electra."; }
  std::string_view label_layer() const override { return "classifier.out_proj"; }
  void quantize(Quantization q) override {
    if (q == Quantization::kInt8) quantize_int8(*electra->encoder);
  }

  ElectraModel electra{nullptr};
  ElectraClassificationHead classifier{nullptr};

 private:
  ElectraConfig config_;
};

std::shared_ptr<SequenceClassifier> ElectraConfig::make_model() const {
  return std::make_shared<ElectraForSequenceClassificationImpl>(*this);
}

}  // namespace

std::unique_ptr<ModelConfig> parse_electra(const Json& j, const std::string& source) {
  auto c = std::make_unique<ElectraConfig>();
  ConfigReader r(j, source);
  r.get("model_type", c->model_type);
  // ElectraConfig's defaults (the small discriminator's shape).
  c->hidden_size = 256;
  c->num_attention_heads = 4;
  c->intermediate_size = 1024;
  read_common(r, *c);
  read_bert_fields(r, *c);
  r.get("embedding_size", c->embedding_size);
  // The summary_* keys configure ElectraSequenceSummary (multiple choice); the sequence
  // classification head ignores them, so they only ride along in `extra`.
  check_bert_fields(r, *c);
  finish_common(r, *c, {{"embedding_size", c->embedding_size}});
  return c;
}

}  // namespace hf::model
