// RoBERTa and XLM-RoBERTa (HF modeling_roberta.py / modeling_xlm_roberta.py, identical modules):
// BERT's encoder, position ids counted from padding_idx + 1 over the non-pad tokens, no pooler,
// and RobertaClassificationHead (dense + tanh on <s>, then out_proj).
#include <fmt/format.h>

#include "core/error.h"
#include "model/families.h"

namespace hf::model {
namespace {

namespace nn = torch::nn;

// RobertaConfig and XLMRobertaConfig: BertConfig's keys with other defaults (pad 1, bos 0, eos 2).
struct RobertaConfig : BertConfig {
  std::int64_t max_length() const override { return max_position_embeddings - pad_token_id - 1; }
  nlohmann::ordered_json to_json() const override {
    return nlohmann::ordered_json(
        sorted_json(model_type == "xlm-roberta" ? "XLMRobertaForSequenceClassification" : "RobertaForSequenceClassification"));
  }
  std::unique_ptr<ModelConfig> clone() const override { return std::make_unique<RobertaConfig>(*this); }
  std::shared_ptr<SequenceClassifier> make_model() const override;
};

class RobertaClassificationHeadImpl : public nn::Module {
 public:
  explicit RobertaClassificationHeadImpl(const BertConfig& c) {
    dense = register_module("dense", Dense(c.hidden_size, c.hidden_size));
    dropout = register_module("dropout", nn::Dropout(c.classifier_dropout.value_or(c.hidden_dropout_prob)));
    out_proj = register_module("out_proj", Dense(c.hidden_size, c.num_labels()));
  }
  // first-token features [B, H] -> logits [B, L]
  torch::Tensor forward(const torch::Tensor& first) { return out_proj(dropout(torch::tanh(dense(dropout(first))))); }

  Dense dense{nullptr}, out_proj{nullptr};
  nn::Dropout dropout{nullptr};
};
TORCH_MODULE(RobertaClassificationHead);

class RobertaModelImpl : public nn::Module {
 public:
  explicit RobertaModelImpl(const RobertaConfig& c) : padding_idx_(c.pad_token_id), max_length_(c.max_length()) {
    embeddings = register_module("embeddings", BertEmbeddings(c));
    encoder = register_module("encoder", BertEncoder(c));
  }
  // -> the first token's hidden state [B, H]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids) {
    const std::int64_t t = input_ids.size(1);
    if (t > max_length_)
      throw Error(ErrorKind::kDataErr, fmt::format("sequence of {} tokens is longer than the {} positions of "
                                                   "max_position_embeddings after padding_idx",
                                                   t, max_length_));
    // HF's create_position_ids_from_input_ids: pad tokens (by id, not by mask) keep padding_idx,
    // the others count from padding_idx + 1.
    const torch::Tensor real = input_ids.ne(padding_idx_).to(torch::kLong);
    const torch::Tensor positions = real.cumsum(1) * real + padding_idx_;  // [B, T]
    const torch::Tensor types = token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids);
    const TokenLayout layout = TokenLayout::of(attention_mask);
    return encoder->first_tokens(embeddings(input_ids, types, layout, positions), layout);  // [B, H]
  }

  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};

 private:
  std::int64_t padding_idx_, max_length_;
};
TORCH_MODULE(RobertaModel);

class RobertaForSequenceClassificationImpl : public SequenceClassifier {
 public:
  explicit RobertaForSequenceClassificationImpl(RobertaConfig c) : config_(std::move(c)) {
    roberta = register_module("roberta", RobertaModel(config_));
    classifier = register_module("classifier", RobertaClassificationHead(config_));
    init_all();
  }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids) override {
    return classifier(roberta(input_ids, attention_mask, token_type_ids));
  }
  const ModelConfig& config() const override { return config_; }
  ModelConfig& config() override { return config_; }
  std::string_view base_prefix() const override { return "roberta."; }
  std::string_view label_layer() const override { return "classifier.out_proj"; }
  void quantize(Quantization q) override {
    if (q == Quantization::kInt8) quantize_int8(*roberta->encoder);
  }

  RobertaModel roberta{nullptr};
  RobertaClassificationHead classifier{nullptr};

 protected:
  void init_tensor(const std::string& name, torch::Tensor& p) override {
    SequenceClassifier::init_tensor(name, p);
    // nn.Embedding(..., padding_idx=pad) for positions too: HF zeroes that row.
    if (name.ends_with("embeddings.position_embeddings.weight")) p[config_.pad_token_id].zero_();
  }

 private:
  RobertaConfig config_;
};

std::shared_ptr<SequenceClassifier> RobertaConfig::make_model() const {
  return std::make_shared<RobertaForSequenceClassificationImpl>(*this);
}

}  // namespace

std::unique_ptr<ModelConfig> parse_roberta(const Json& j, const std::string& source) {
  auto c = std::make_unique<RobertaConfig>();
  ConfigReader r(j, source);
  r.get("model_type", c->model_type);
  c->pad_token_id = 1;
  if (c->model_type == "roberta") c->vocab_size = 50265;
  read_common(r, *c);
  read_bert_fields(r, *c);
  check_bert_fields(r, *c);
  finish_common(r, *c);
  if (c->max_length() < 1)
    r.fail("max_position_embeddings",
           fmt::format("{} leaves no position after padding_idx {}", c->max_position_embeddings, c->pad_token_id));
  return c;
}

}  // namespace hf::model
