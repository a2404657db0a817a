// The BERT modules (HF modeling_bert.py's BertEmbeddings ... BertForSequenceClassification), HF's
// weight initialisation, activations and losses. Attention runs through
// scaled_dot_product_attention (fused kernels on CPU and CUDA); it equals HF's eager softmax path.
#include <fmt/format.h>


#include "core/error.h"
#include "model/model.h"

namespace hf::model {
namespace {

namespace nn = torch::nn;

nn::LayerNorm bert_layer_norm(const BertConfig& c) {
  return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

}  // namespace

std::function<torch::Tensor(const torch::Tensor&)> activation(std::string_view name) {
  using F = std::function<torch::Tensor(const torch::Tensor&)>;
  // The tanh-approximated GELUs of HF (gelu_new, gelu_fast, ...) are one formula written differently.
  if (name == "gelu" || name == "gelu_python") return F([](const torch::Tensor& x) { return torch::gelu(x); });
  if (name == "gelu_new" || name == "gelu_fast" || name == "gelu_pytorch_tanh" || name == "gelu_python_tanh" ||
      name == "gelu_accurate")
    return F([](const torch::Tensor& x) { return torch::gelu(x, "tanh"); });
  if (name == "relu") return F([](const torch::Tensor& x) { return torch::relu(x); });
  if (name == "silu" || name == "swish") return F([](const torch::Tensor& x) { return torch::silu(x); });
  if (name == "tanh") return F([](const torch::Tensor& x) { return torch::tanh(x); });
  if (name == "quick_gelu") return F([](const torch::Tensor& x) { return x * torch::sigmoid(1.702 * x); });
  if (name == "mish") return F([](const torch::Tensor& x) { return torch::mish(x); });
  throw Error(ErrorKind::kDataErr,
              fmt::format("unsupported hidden_act '{}' (supported: gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, "
                          "relu, silu, swish, tanh, quick_gelu, mish)",
                          name));
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) {
  word_embeddings = register_module(
      "word_embeddings", nn::Embedding(nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_embeddings =
      register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
  layer_norm = register_module("LayerNorm", bert_layer_norm(c));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                                          const TokenLayout& layout) {
  const std::int64_t t = input_ids.size(1);
  if (t > position_embeddings->weight.size(0))
    throw Error(ErrorKind::kDataErr, fmt::format("sequence of {} tokens is longer than max_position_embeddings {}", t,
                                                 position_embeddings->weight.size(0)));
  torch::Tensor x;
  if (layout.packed()) {
    // Row r of the flattened batch is position r % T of its text.
    const torch::Tensor ids = input_ids.reshape({-1}).index_select(0, layout.index);         // [R]
    const torch::Tensor types = token_type_ids.reshape({-1}).index_select(0, layout.index);  // [R]
    x = word_embeddings(ids) + token_type_embeddings(types);                               // [R, H]
    x = x + position_embeddings(layout.index.remainder(t));
  } else {
    const torch::Tensor positions = torch::arange(t, input_ids.options().dtype(torch::kLong)).unsqueeze(0);  // [1, T]
    x = word_embeddings(input_ids) + token_type_embeddings(token_type_ids);  // [B, T, H]
    x = x + position_embeddings(positions);
  }
  return dropout(layer_norm(x));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c)
    : num_heads_(c.num_attention_heads), dropout_p_(c.attention_probs_dropout_prob) {
  query = register_module("query", Dense(c.hidden_size, c.hidden_size));
  key = register_module("key", Dense(c.hidden_size, c.hidden_size));
  value = register_module("value", Dense(c.hidden_size, c.hidden_size));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout) {
  const std::int64_t h = x.size(-1);
  const std::int64_t b = layout.packed() ? layout.batch : x.size(0), t = layout.packed() ? layout.length : x.size(1);
  // [R, H] or [B, T, H] -> [B, N, T, D]; packed rows are scattered into a zero-padded [B * T, H].
  auto heads = [&](const torch::Tensor& y) {
    const torch::Tensor padded =
        layout.packed() ? torch::zeros({b * t, h}, y.options()).index_copy(0, layout.index, y) : y;
    return padded.view({b, t, num_heads_, h / num_heads_}).transpose(1, 2);
  };
  const torch::Tensor q = heads(query(x)), k = heads(key(x)), v = heads(value(x));  // [B, N, T, D]
  const std::optional<torch::Tensor> attn_mask = layout.mask.defined() ? std::optional(layout.mask) : std::nullopt;
  torch::Tensor context = at::scaled_dot_product_attention(q, k, v, attn_mask, /*dropout_p=*/is_training() ? dropout_p_ : 0.0,
                                                           /*is_causal=*/false);  // [B, N, T, D]
  if (layout.packed()) return context.transpose(1, 2).reshape({b * t, h}).index_select(0, layout.index);  // [R, H]
  return context.transpose(1, 2).reshape({b, t, h});                                                      // [B, T, H]
}

BertResidualOutputImpl::BertResidualOutputImpl(const BertConfig& c, std::int64_t in_features) {
  dense = register_module("dense", Dense(in_features, c.hidden_size));
  layer_norm = register_module("LayerNorm", bert_layer_norm(c));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return layer_norm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c) {
  self_attention = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidualOutput(c, c.hidden_size));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout) {
  return output(self_attention(x, layout), x);
}

BertIntermediateImpl::BertIntermediateImpl(const BertConfig& c) : activation_(activation(c.hidden_act)) {
  dense = register_module("dense", Dense(c.hidden_size, c.intermediate_size));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& x) { return activation_(dense(x)); }

BertLayerImpl::BertLayerImpl(const BertConfig& c) {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidualOutput(c, c.intermediate_size));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const TokenLayout& layout) {
  const torch::Tensor a = attention(x, layout);  // like x
  return output(intermediate(a), a);
}

BertEncoderImpl::BertEncoderImpl(const BertConfig& c) {
  layer = register_module("layer", nn::ModuleList());
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(BertLayer(c));
}

torch::Tensor BertEncoderImpl::forward(torch::Tensor x, const TokenLayout& layout) {
  for (const auto& l : *layer) x = l->as<BertLayerImpl>()->forward(x, layout);
  return x;
}

BertPoolerImpl::BertPoolerImpl(const BertConfig& c) {
  dense = register_module("dense", Dense(c.hidden_size, c.hidden_size));
}

torch::Tensor BertPoolerImpl::forward(const torch::Tensor& sequence) {
  return torch::tanh(dense(sequence.select(/*dim=*/1, /*index=*/0)));
}

BertModelImpl::BertModelImpl(const BertConfig& c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
  pooler = register_module("pooler", BertPooler(c));
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                     const torch::Tensor& token_type_ids) {
  const torch::Tensor types = token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids);
  TokenLayout layout;
  if (attention_mask.defined()) {
    const torch::Tensor real = attention_mask.to(torch::kBool);  // [B, T]
    const auto n_real = real.sum().item<std::int64_t>();
    if (n_real < real.numel()) {
      // Measured on 2 CPU cores: packing pays even for length-sorted inference batches, whose
      // little padding still costs more in the feed-forward than the scatter/gather per layer.
      layout.mask = real.unsqueeze(1).unsqueeze(2);  // [B, 1, 1, T], true = attend (any autocast dtype)
      layout.index = real.reshape({-1}).nonzero().squeeze(1);
      layout.batch = real.size(0);
      layout.length = real.size(1);
    }
  }
  torch::Tensor x = encoder(embeddings(input_ids, types, layout), layout);  // [B, T, H] or [R, H]
  if (layout.packed()) {
    const std::int64_t h = x.size(1);
    x = torch::zeros({layout.batch * layout.length, h}, x.options())
            .index_copy(0, layout.index, x)
            .view({layout.batch, layout.length, h});
  }
  return pooler(x);  // [B, H]
}

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(BertConfig c) : config_(std::move(c)) {
  bert = register_module("bert", BertModel(config_));
  dropout = register_module("dropout", nn::Dropout(config_.classifier_dropout.value_or(config_.hidden_dropout_prob)));
  classifier = register_module("classifier", Dense(config_.hidden_size, config_.num_labels()));
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) init_tensor(p.key(), p.value());
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask,
                                                         const torch::Tensor& token_type_ids) {
  return classifier(dropout(bert(input_ids, attention_mask, token_type_ids)));  // [B, L]
}

void BertForSequenceClassificationImpl::quantize(Quantization q) {
  if (q == Quantization::kInt8) quantize_int8(*bert->encoder);
}

void BertForSequenceClassificationImpl::init_parameter(const std::string& name) {
  torch::NoGradGuard no_grad;
  auto params = named_parameters();  // find() points into this dict
  torch::Tensor* p = params.find(name);
  if (p == nullptr) throw Error(ErrorKind::kInternal, fmt::format("no parameter '{}' to initialise", name));
  init_tensor(name, *p);
}

void BertForSequenceClassificationImpl::init_tensor(const std::string& name, torch::Tensor& p) {
  // HF _init_weights: LayerNorm 1/0, Linear and Embedding N(0, initializer_range) with zero bias and
  // a zero padding row.
  const bool is_bias = name.ends_with(".bias");
  if (name.find("LayerNorm") != std::string::npos) {
    is_bias ? p.zero_() : p.fill_(1.0);
  } else if (is_bias) {
    p.zero_();
  } else {
    p.normal_(0.0, config_.initializer_range);
    if (name == "bert.embeddings.word_embeddings.weight") p[config_.pad_token_id].zero_();
  }
}

ProblemType resolve_problem_type(const BertConfig& config, const torch::Tensor& labels) {
  if (config.problem_type) return *config.problem_type;
  if (config.num_labels() == 1) return ProblemType::kRegression;
  if (labels.scalar_type() == torch::kLong || labels.scalar_type() == torch::kInt)
    return ProblemType::kSingleLabelClassification;
  return ProblemType::kMultiLabelClassification;
}

torch::Tensor classification_loss(ProblemType type, const torch::Tensor& logits, const torch::Tensor& labels) {
  switch (type) {
    case ProblemType::kRegression:
      if (logits.size(-1) == 1) return torch::mse_loss(logits.view(-1), labels.view(-1).to(logits.dtype()));
      return torch::mse_loss(logits, labels.to(logits.dtype()));
    case ProblemType::kSingleLabelClassification:
      return torch::cross_entropy_loss(logits.view({-1, logits.size(-1)}), labels.view(-1).to(torch::kLong));
    case ProblemType::kMultiLabelClassification:
      return torch::binary_cross_entropy_with_logits(logits, labels.to(logits.dtype()));
  }
  throw Error(ErrorKind::kInternal, "unknown problem type");
}

}  // namespace hf::model
