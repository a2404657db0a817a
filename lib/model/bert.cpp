// The BERT modules (HF modeling_bert.py's BertEmbeddings ... BertForSequenceClassification) and the
// token layout and attention the other families share. Attention runs through
// scaled_dot_product_attention (fused kernels on CPU and CUDA); it equals HF's eager softmax path.
#include <fmt/format.h>


#include "core/error.h"
#include "model/bert.h"

namespace hf::model {
namespace {

namespace nn = torch::nn;

nn::LayerNorm bert_layer_norm(const BertConfig& c) {
  return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

}  // namespace

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) {
  word_embeddings = register_module(
      "word_embeddings", embedding(nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_embeddings = register_module(
      "position_embeddings", embedding(nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size)));
  token_type_embeddings =
      register_module("token_type_embeddings", embedding(nn::EmbeddingOptions(c.type_vocab_size, c.hidden_size)));
  layer_norm = register_module("LayerNorm", bert_layer_norm(c));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                                          const TokenLayout& layout, const torch::Tensor& position_ids) {
  const std::int64_t t = input_ids.size(1);
  const std::int64_t max_positions = position_embeddings->weight.size(0);
  if (!position_ids.defined() && t > max_positions)
    throw Error(ErrorKind::kDataErr,
                fmt::format("sequence of {} tokens is longer than max_position_embeddings {}", t, max_positions));
  torch::Tensor x;
  if (layout.packed()) {
    // Row r of the flattened batch is position r % T of its text.
    const torch::Tensor ids = input_ids.reshape({-1}).index_select(0, layout.index);         // [R]
    const torch::Tensor types = token_type_ids.reshape({-1}).index_select(0, layout.index);  // [R]
    x = word_embeddings(ids) + token_type_embeddings(types);                               // [R, H]
    x = x + position_embeddings(position_ids.defined() ? position_ids.reshape({-1}).index_select(0, layout.index)
                                                       : layout.index.remainder(t));
  } else {
    const torch::Tensor positions = position_ids.defined()
                                        ? position_ids
                                        : torch::arange(t, input_ids.options().dtype(torch::kLong)).unsqueeze(0);  // [1, T]
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

torch::Tensor attend(const torch::Tensor& q_rows, const torch::Tensor& k_rows, const torch::Tensor& v_rows,
                     const TokenLayout& layout, std::int64_t num_heads, double dropout_p) {
  const std::optional<torch::Tensor> attn_mask = layout.mask.defined() ? std::optional(layout.mask) : std::nullopt;
  return layout.merge_heads(at::scaled_dot_product_attention(
      layout.split_heads(q_rows, num_heads), layout.split_heads(k_rows, num_heads),
      layout.split_heads(v_rows, num_heads), attn_mask, dropout_p, /*is_causal=*/false));  // heads -> rows
}

torch::Tensor attend_first(const torch::Tensor& q_first, const torch::Tensor& k_rows, const torch::Tensor& v_rows,
                           const TokenLayout& layout, std::int64_t num_heads, double dropout_p) {
  const std::int64_t h = q_first.size(-1), b = q_first.size(0);
  const torch::Tensor q = q_first.view({b, 1, num_heads, h / num_heads}).transpose(1, 2);  // [B, N, 1, D]
  const std::optional<torch::Tensor> attn_mask = layout.mask.defined() ? std::optional(layout.mask) : std::nullopt;
  return at::scaled_dot_product_attention(q, layout.split_heads(k_rows, num_heads),
                                          layout.split_heads(v_rows, num_heads), attn_mask, dropout_p,
                                          /*is_causal=*/false)
      .transpose(1, 2)
      .reshape({b, h});  // [B, H]
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout) {
  return attend(query(x), key(x), value(x), layout, num_heads_, is_training() ? dropout_p_ : 0.0);
}

torch::Tensor BertSelfAttentionImpl::forward_first(const torch::Tensor& x, const torch::Tensor& first,
                                                   const TokenLayout& layout) {
  return attend_first(query(first), key(x), value(x), layout, num_heads_, is_training() ? dropout_p_ : 0.0);
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

torch::Tensor BertAttentionImpl::forward_first(const torch::Tensor& x, const torch::Tensor& first,
                                               const TokenLayout& layout) {
  return output(self_attention->forward_first(x, first, layout), first);
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

torch::Tensor BertLayerImpl::forward_first(const torch::Tensor& x, const TokenLayout& layout) {
  const torch::Tensor a = attention->forward_first(x, layout.first(x), layout);  // [B, H]
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

torch::Tensor BertEncoderImpl::first_tokens(torch::Tensor x, const TokenLayout& layout) {
  if (!last_layer_first_only(*this, layer->size(), layout)) return layout.first(forward(std::move(x), layout));
  const std::size_t last = layer->size() - 1;
  for (std::size_t i = 0; i < last; ++i) x = layer[i]->as<BertLayerImpl>()->forward(x, layout);
  return layer[last]->as<BertLayerImpl>()->forward_first(x, layout);  // [B, H]
}

BertPoolerImpl::BertPoolerImpl(const BertConfig& c) {
  dense = register_module("dense", Dense(c.hidden_size, c.hidden_size));
}

torch::Tensor BertPoolerImpl::forward(const torch::Tensor& first) { return torch::tanh(dense(first)); }

BertModelImpl::BertModelImpl(const BertConfig& c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
  pooler = register_module("pooler", BertPooler(c));
}

TokenLayout TokenLayout::of(const torch::Tensor& attention_mask) {
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
      // Packed rows run text by text; a text whose position 0 is real starts at the count before it.
      if (real.select(1, 0).all().item<bool>()) {
        const torch::Tensor counts = real.sum(1);  // [B] int64
        layout.starts = counts.cumsum(0) - counts;
      }
    }
  }
  return layout;
}

torch::Tensor TokenLayout::unpack(const torch::Tensor& x) const {
  if (!packed()) return x;
  const std::int64_t h = x.size(1);
  return torch::zeros({batch * length, h}, x.options()).index_copy(0, index, x).view({batch, length, h});
}

torch::Tensor TokenLayout::first(const torch::Tensor& x) const {
  if (!packed()) return x.select(/*dim=*/1, /*index=*/0);
  if (starts.defined()) return x.index_select(0, starts);
  return unpack(x).select(/*dim=*/1, /*index=*/0);
}

torch::Tensor TokenLayout::split_heads(const torch::Tensor& y, std::int64_t num_heads) const {
  const std::int64_t h = y.size(-1);
  const std::int64_t b = packed() ? batch : y.size(0), t = packed() ? length : y.size(1);
  const torch::Tensor padded = packed() ? torch::zeros({b * t, h}, y.options()).index_copy(0, index, y) : y;
  return padded.view({b, t, num_heads, h / num_heads}).transpose(1, 2);
}

torch::Tensor TokenLayout::merge_heads(const torch::Tensor& context) const {
  const std::int64_t b = context.size(0), t = context.size(2), h = context.size(1) * context.size(3);
  const torch::Tensor rows = context.transpose(1, 2).reshape({b * t, h});  // [B * T, H]
  return packed() ? rows.index_select(0, index) : rows.view({b, t, h});
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                     const torch::Tensor& token_type_ids) {
  const torch::Tensor types = token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids);
  const TokenLayout layout = TokenLayout::of(attention_mask);
  return pooler(encoder->first_tokens(embeddings(input_ids, types, layout), layout));  // [B, H]
}

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(BertConfig c) : config_(std::move(c)) {
  bert = register_module("bert", BertModel(config_));
  dropout = register_module("dropout", nn::Dropout(config_.classifier_dropout.value_or(config_.hidden_dropout_prob)));
  classifier = register_module("classifier", Dense(config_.hidden_size, config_.num_labels()));
  init_all();
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask,
                                                         const torch::Tensor& token_type_ids) {
  return classifier(dropout(bert(input_ids, attention_mask, token_type_ids)));  // [B, L]
}

void BertForSequenceClassificationImpl::quantize(Quantization q) {
  if (q == Quantization::kInt8) quantize_int8(*bert->encoder);
}

std::shared_ptr<SequenceClassifier> BertConfig::make_model() const {
  return std::make_shared<BertForSequenceClassificationImpl>(*this);
}

}  // namespace hf::model
