// DeBERTa-v2 / DeBERTa-v3 (HF modeling_deberta_v2.py, model_type "deberta-v2"): embeddings (word,
// optional absolute positions and token types, embed_proj when embedding_size differs, LayerNorm),
// disentangled self-attention (content-to-position and position-to-content terms over log-bucketed
// relative positions, shared or separate position projections), BERT's feed-forward and residual
// blocks, the encoder's rel_embeddings (+ LayerNorm), ContextPooler and the classifier. Leaves out
// the ConvLayer (conv_kernel_size > 0) and the p2p attention term: both are refused.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "model/families.h"

namespace hf::model {
namespace {

namespace nn = torch::nn;

// HF's DebertaV2Config (plus the keys its modules read with getattr). BertConfig's fields mean the
// same here, so BERT's feed-forward and residual blocks are reused as they are.
struct DebertaV2Config : BertConfig {
  bool relative_attention = false;
  std::int64_t max_relative_positions = -1;  // < 1: max_position_embeddings
  bool position_biased_input = true;
  std::vector<std::string> pos_att_type;  // a subset of {"c2p", "p2c"}
  double pooler_dropout = 0.0;
  std::string pooler_hidden_act = "gelu";
  bool share_att_key = false;
  std::int64_t position_buckets = -1;  // <= 0: no log buckets
  std::string norm_rel_ebd = "none";   // "layer_norm": LayerNorm over rel_embeddings
  std::optional<std::int64_t> embedding_size;  // none: hidden_size

  DebertaV2Config() {
    model_type = "deberta-v2";
    vocab_size = 128100;
    hidden_size = 1536;
    num_hidden_layers = 24;
    num_attention_heads = 24;
    intermediate_size = 6144;
    type_vocab_size = 0;
    layer_norm_eps = 1e-7;
  }
  bool has(std::string_view att) const {
    return std::find(pos_att_type.begin(), pos_att_type.end(), att) != pos_att_type.end();
  }
  // The largest relative distance the buckets are laid out for.
  std::int64_t max_relative() const {
    return max_relative_positions < 1 ? max_position_embeddings : max_relative_positions;
  }
  // HF's pos_ebd_size / att_span: rel_embeddings has 2 * span rows.
  std::int64_t span() const { return position_buckets > 0 ? position_buckets : max_relative(); }
  bool rel_layer_norm() const;

  nlohmann::ordered_json to_json() const override;
  std::unique_ptr<ModelConfig> clone() const override { return std::make_unique<DebertaV2Config>(*this); }
  std::shared_ptr<SequenceClassifier> make_model() const override;
};

// norm_rel_ebd is a "|"-separated list, case-insensitive, as HF reads it.
std::vector<std::string> split_lower(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    const auto b = cur.find_first_not_of(" \t"), e = cur.find_last_not_of(" \t");
    out.push_back(b == std::string::npos ? "" : cur.substr(b, e - b + 1));
    cur.clear();
  };
  for (char ch : s) {
    if (ch == '|') flush();
    else cur += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  flush();
  return out;
}

bool DebertaV2Config::rel_layer_norm() const {
  const auto parts = split_lower(norm_rel_ebd);
  return std::find(parts.begin(), parts.end(), "layer_norm") != parts.end();
}

nlohmann::ordered_json DebertaV2Config::to_json() const {
  nlohmann::json j = common_json(*this, "DebertaV2ForSequenceClassification");
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["relative_attention"] = relative_attention;
  j["max_relative_positions"] = max_relative_positions;
  j["position_biased_input"] = position_biased_input;
  j["pos_att_type"] = pos_att_type;
  j["pooler_dropout"] = pooler_dropout;
  j["pooler_hidden_act"] = pooler_hidden_act;
  j["share_att_key"] = share_att_key;
  j["position_buckets"] = position_buckets;
  j["norm_rel_ebd"] = norm_rel_ebd;
  if (embedding_size) j["embedding_size"] = *embedding_size;
  if (classifier_dropout) j["cls_dropout"] = *classifier_dropout;
  return nlohmann::ordered_json(j);
}

nn::LayerNorm layer_norm(const DebertaV2Config& c) {
  return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

// HF's make_log_bucket_position + build_relative_position for a self-attention of t tokens:
// [T, T] int64, row i column j = bucket(i - j). Distances under bucket_size / 2 stay exact; longer
// ones share logarithmically wider buckets up to max_position. The float steps (true division,
// log, a float32 constant computed on the CPU, ceil) are HF's, op for op on the same [T, T] shape,
// so that a value right at a bucket edge rounds as it does in transformers.
torch::Tensor relative_positions(std::int64_t t, std::int64_t bucket_size, std::int64_t max_position,
                                 const torch::Device& device) {
  const auto ids = torch::arange(t, torch::TensorOptions().dtype(torch::kLong).device(device));
  torch::Tensor rel = ids.unsqueeze(1) - ids.unsqueeze(0);  // [T, T]
  if (bucket_size <= 0 || max_position <= 0) return rel;
  const std::int64_t mid = bucket_size / 2;
  const torch::Tensor sign = torch::sign(rel);
  const torch::Tensor abs_pos =
      torch::where((rel < mid) & (rel > -mid), torch::scalar_tensor(mid - 1, torch::kLong).to(rel.device()), rel.abs());
  const torch::Tensor log_max =
      torch::log(torch::scalar_tensor(static_cast<double>(max_position - 1) / static_cast<double>(mid), torch::kFloat));
  const torch::Tensor log_pos = torch::ceil(torch::log(abs_pos / mid) / log_max * (mid - 1)) + mid;  // float32
  return torch::where(abs_pos <= mid, rel.to(log_pos.scalar_type()), log_pos * sign).to(torch::kLong);
}

// What every layer's disentangled attention reads of the relative positions, computed once per
// forward pass. c2p[i, j] and p2c[i, j] ([T, T] int64) are the rows of `embeddings` that query i
// and key j meet through (HF's clamped c2p_pos / p2c_pos). Training keeps all 2 * span rows of
// rel_embeddings, as HF: its pos_dropout draws over every row. Inference keeps only the rows a
// T-token batch reaches (2T - 1 of 512 for short texts), so the position projections and their
// products with every query and key shrink by as much.
struct RelativePositions {
  torch::Tensor c2p, p2c;
  torch::Tensor embeddings;  // [P, H], normalised as the encoder asks
};

// The most negative finite value of a dtype: HF's torch.finfo(dtype).min for masked scores. Finite,
// so a row of padding (all masked) still has a softmax without NaN (its gradient must stay 0).
double lowest(torch::ScalarType dtype) {
  double v = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(torch::kHalf, torch::kBFloat16, dtype, "lowest",
                                  [&] { v = static_cast<double>(std::numeric_limits<scalar_t>::lowest()); });
  return v;
}

class EmbeddingsImpl : public nn::Module {
 public:
  explicit EmbeddingsImpl(const DebertaV2Config& c) {
    const std::int64_t e = c.embedding_size.value_or(c.hidden_size);
    word_embeddings = register_module(
        "word_embeddings", embedding(nn::EmbeddingOptions(c.vocab_size, e).padding_idx(c.pad_token_id)));
    if (c.position_biased_input)
      position_embeddings =
          register_module("position_embeddings", embedding(nn::EmbeddingOptions(c.max_position_embeddings, e)));
    if (c.type_vocab_size > 0)
      token_type_embeddings =
          register_module("token_type_embeddings", embedding(nn::EmbeddingOptions(c.type_vocab_size, e)));
    if (e != c.hidden_size)
      embed_proj = register_module("embed_proj", nn::Linear(nn::LinearOptions(e, c.hidden_size).bias(false)));
    norm = register_module("LayerNorm", layer_norm(c));
    dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
  }
  // input_ids, token_type_ids [B, T] int64 -> [B, T, H], or [R, H] for the real tokens of a packed
  // layout. HF's multiply by the mask is left out: it zeroes padding rows only.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids, const TokenLayout& layout) {
    const std::int64_t t = input_ids.size(1);
    torch::Tensor positions, ids = input_ids, types = token_type_ids;
    if (layout.packed()) {
      ids = input_ids.reshape({-1}).index_select(0, layout.index);  // [R]
      types = token_type_ids.reshape({-1}).index_select(0, layout.index);
      positions = layout.index.remainder(t);  // row r of the flattened batch is position r % T
    } else {
      positions = torch::arange(t, input_ids.options().dtype(torch::kLong)).unsqueeze(0);  // [1, T]
    }
    torch::Tensor x = word_embeddings(ids);  // [B, T, E] or [R, E]; HF's order of sums
    if (!position_embeddings.is_empty()) x = x + position_embeddings(positions);
    if (!token_type_embeddings.is_empty()) x = x + token_type_embeddings(types);
    if (!embed_proj.is_empty()) x = embed_proj(x);
    return dropout(norm(x));
  }

  nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  nn::Linear embed_proj{nullptr};
  nn::LayerNorm norm{nullptr};
  nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Embeddings);

class DisentangledSelfAttentionImpl : public nn::Module {
 public:
  explicit DisentangledSelfAttentionImpl(const DebertaV2Config& c)
      : num_heads_(c.num_attention_heads),
        relative_(c.relative_attention),
        share_att_key_(c.share_att_key),
        c2p_(c.has("c2p")),
        p2c_(c.has("p2c")) {
    query_proj = register_module("query_proj", Dense(c.hidden_size, c.hidden_size));
    key_proj = register_module("key_proj", Dense(c.hidden_size, c.hidden_size));
    value_proj = register_module("value_proj", Dense(c.hidden_size, c.hidden_size));
    if (relative_) {
      pos_dropout = register_module("pos_dropout", nn::Dropout(c.hidden_dropout_prob));
      if (!share_att_key_ && c2p_) pos_key_proj = register_module("pos_key_proj", Dense(c.hidden_size, c.hidden_size));
      if (!share_att_key_ && p2c_)
        pos_query_proj = register_module("pos_query_proj", Dense(c.hidden_size, c.hidden_size));
    }
    dropout = register_module("dropout", nn::Dropout(c.attention_probs_dropout_prob));
  }

  // x [B, T, H] or packed [R, H] -> context of the same shape. `rel` is the encoder's; its tensors
  // are undefined without relative_attention.
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, const RelativePositions& rel) {
    const std::int64_t h = x.size(-1);
    const torch::Tensor q = layout.split_heads(query_proj(x), num_heads_),
                        k = layout.split_heads(key_proj(x), num_heads_),
                        v = layout.split_heads(value_proj(x), num_heads_);  // [B, N, T, D]
    const torch::Tensor scale = scale_like(q, h);
    return layout.merge_heads(attend(q, k, v, layout, rel, rel.c2p, rel.p2c, scale));  // -> [R, H] or [B, T, H]
  }

  // The context of each text's first token only (query position 0): x as above, first =
  // layout.first(x) [B, H] -> [B, H]. Keys and values still come from every token.
  torch::Tensor forward_first(const torch::Tensor& x, const torch::Tensor& first, const TokenLayout& layout,
                              const RelativePositions& rel) {
    const std::int64_t h = x.size(-1), b = first.size(0);
    const torch::Tensor q = query_proj(first).view({b, 1, num_heads_, h / num_heads_}).transpose(1, 2);  // [B, N, 1, D]
    const torch::Tensor k = layout.split_heads(key_proj(x), num_heads_), v = layout.split_heads(value_proj(x), num_heads_);
    const torch::Tensor c2p = rel.c2p.defined() ? rel.c2p.slice(0, 0, 1) : rel.c2p;  // [1, T]: query 0's row
    const torch::Tensor p2c = rel.p2c.defined() ? rel.p2c.slice(1, 0, 1) : rel.p2c;  // [T, 1]: query 0's column
    return attend(q, k, v, layout, rel, c2p, p2c, scale_like(q, h)).transpose(1, 2).reshape({b, h});
  }

  Dense query_proj{nullptr}, key_proj{nullptr}, value_proj{nullptr}, pos_key_proj{nullptr}, pos_query_proj{nullptr};
  nn::Dropout pos_dropout{nullptr}, dropout{nullptr};

 private:
  // HF divides by sqrt(D * (1 + number of position terms)), a float32 tensor made on the CPU.
  torch::Tensor scale_like(const torch::Tensor& q, std::int64_t h) const {
    return torch::sqrt(torch::scalar_tensor(static_cast<double>(h / num_heads_), torch::kFloat) *
                       (1 + (c2p_ ? 1 : 0) + (p2c_ ? 1 : 0)))
        .to(q.scalar_type());
  }

  // HF's attention with the disentangled bias: q [B, N, Tq, D], k and v [B, N, T, D] -> context
  // [B, N, Tq, D]. c2p_index [Tq, T] and p2c_index [T, Tq] are rows of rel's embeddings.
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const TokenLayout& layout,
                       const RelativePositions& rel, const torch::Tensor& c2p_index, const torch::Tensor& p2c_index,
                       const torch::Tensor& scale) {
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2) / scale);  // [B, N, Tq, T]
    if (relative_) {
      const torch::Tensor bias = position_bias(q, k, pos_dropout(rel.embeddings), c2p_index, p2c_index, scale);
      if (bias.defined()) scores = scores + bias;
    }
    if (layout.mask.defined()) scores = scores.masked_fill(layout.mask.logical_not(), lowest(scores.scalar_type()));
    const torch::Tensor probs = dropout(torch::softmax(scores, /*dim=*/-1));
    return torch::matmul(probs, v);
  }

  // HF's disentangled_attention_bias: c2p[i, j] = q_i . k_pos[c2p_index[i, j]] and p2c[i, j] =
  // k_j . q_pos[p2c_index[j, i]], each divided by `scale` -> [B, N, Tq, T], undefined when
  // pos_att_type is empty. embeddings [P, H]: rel.embeddings after dropout.
  torch::Tensor position_bias(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& embeddings,
                              const torch::Tensor& c2p_index, const torch::Tensor& p2c_index,
                              const torch::Tensor& scale) {
    const std::int64_t b = q.size(0), tq = q.size(2), t = k.size(2);
    torch::Tensor bias;
    if (c2p_) {
      const torch::Tensor c2p = against_positions(q, share_att_key_ ? key_proj : pos_key_proj, embeddings);
      bias = torch::gather(c2p, /*dim=*/-1, c2p_index.expand({b, num_heads_, tq, t})) / scale;
    }
    if (p2c_) {
      const torch::Tensor p2c = against_positions(k, share_att_key_ ? query_proj : pos_query_proj, embeddings);
      const torch::Tensor term =
          torch::gather(p2c, /*dim=*/-1, p2c_index.expand({b, num_heads_, t, tq})).transpose(-1, -2) / scale;
      bias = bias.defined() ? bias + term : term;
    }
    return bias;
  }

  // a [B, N, T, D] times the projected positions per head -> [B, N, T, P].
  torch::Tensor against_positions(const torch::Tensor& a, Dense& proj, const torch::Tensor& embeddings) {
    const std::int64_t n = num_heads_, d = a.size(3), p = embeddings.size(0);
    const torch::Tensor pos = proj(embeddings).view({p, n, d}).permute({1, 2, 0});  // [N, D, P]
    // Training: HF's broadcasting matmul, so the sums run in its order (hf-train matches HF bit for bit).
    if (is_training()) return torch::matmul(a, pos.unsqueeze(0));
    // Inference: one product per head over every row of the batch. The broadcasting matmul copies
    // the positions once per text first (B x N x D x P floats per call).
    const std::int64_t b = a.size(0), t = a.size(2);
    return torch::bmm(a.transpose(0, 1).reshape({n, b * t, d}), pos).view({n, b, t, p}).transpose(0, 1);
  }

  std::int64_t num_heads_;
  bool relative_, share_att_key_, c2p_, p2c_;
};
TORCH_MODULE(DisentangledSelfAttention);

class AttentionImpl : public nn::Module {
 public:
  explicit AttentionImpl(const DebertaV2Config& c) {
    self_attention = register_module("self", DisentangledSelfAttention(c));
    output = register_module("output", BertResidualOutput(c, c.hidden_size));
  }
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, const RelativePositions& rel) {
    return output(self_attention(x, layout, rel), x);
  }
  torch::Tensor forward_first(const torch::Tensor& x, const torch::Tensor& first, const TokenLayout& layout,
                              const RelativePositions& rel) {
    return output(self_attention->forward_first(x, first, layout, rel), first);  // [B, H]
  }

  DisentangledSelfAttention self_attention{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(Attention);

class LayerImpl : public nn::Module {
 public:
  explicit LayerImpl(const DebertaV2Config& c) {
    attention = register_module("attention", Attention(c));
    intermediate = register_module("intermediate", BertIntermediate(c));
    output = register_module("output", BertResidualOutput(c, c.intermediate_size));
  }
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, const RelativePositions& rel) {
    const torch::Tensor a = attention(x, layout, rel);  // like x
    return output(intermediate(a), a);
  }
  // The layer's output at each text's first token only: [B, H].
  torch::Tensor forward_first(const torch::Tensor& x, const TokenLayout& layout, const RelativePositions& rel) {
    const torch::Tensor a = attention->forward_first(x, layout.first(x), layout, rel);  // [B, H]
    return output(intermediate(a), a);
  }

  Attention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(Layer);

class EncoderImpl : public nn::Module {
 public:
  explicit EncoderImpl(const DebertaV2Config& c)
      : relative_(c.relative_attention), buckets_(c.position_buckets), max_relative_(c.max_relative()) {
    layer = register_module("layer", nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(Layer(c));
    if (relative_)
      rel_embeddings = register_module("rel_embeddings", embedding(nn::EmbeddingOptions(2 * c.span(), c.hidden_size)));
    // HF builds this LayerNorm whenever norm_rel_ebd asks for it, relative attention or not.
    if (c.rel_layer_norm()) norm = register_module("LayerNorm", layer_norm(c));
  }
  // x [B, T, H] or [R, H] -> the same shape after every layer.
  torch::Tensor forward(torch::Tensor x, const TokenLayout& layout) {
    const RelativePositions rel = positions(x, layout);
    for (const auto& l : *layer) x = l->as<LayerImpl>()->forward(x, layout, rel);
    return x;
  }

  // Each text's last hidden state at position 0, [B, H]: what ContextPooler reads. As BERT's
  // first_tokens, the last layer runs for that token only where last_layer_first_only allows.
  torch::Tensor first_tokens(torch::Tensor x, const TokenLayout& layout) {
    if (!last_layer_first_only(*this, layer->size(), layout)) return layout.first(forward(std::move(x), layout));
    const RelativePositions rel = positions(x, layout);
    const std::size_t last = layer->size() - 1;
    for (std::size_t i = 0; i < last; ++i) x = layer[i]->as<LayerImpl>()->forward(x, layout, rel);
    return layer[last]->as<LayerImpl>()->forward_first(x, layout, rel);
  }

  nn::ModuleList layer{nullptr};
  nn::Embedding rel_embeddings{nullptr};
  nn::LayerNorm norm{nullptr};  // registered as "LayerNorm"

 private:
  RelativePositions positions(const torch::Tensor& x, const TokenLayout& layout) {
    if (!relative_) return {};
    const std::int64_t t = layout.packed() ? layout.length : x.size(1);
    const torch::Device device = x.device();
    const std::int64_t rows = rel_embeddings->weight.size(0);  // 2 * span
    const torch::Tensor rel_pos = relative_positions(t, buckets_, max_relative_, device);  // [T, T]
    RelativePositions rel{torch::clamp(rel_pos + rows / 2, 0, rows - 1), torch::clamp(-rel_pos + rows / 2, 0, rows - 1),
                          rel_embeddings->weight};
    if (!is_training()) {
      // One read back (one sync on CUDA): [min, max] of both index sets.
      const auto [lo_t, hi_t] = torch::aminmax(torch::cat({rel.c2p.flatten(), rel.p2c.flatten()}));
      const torch::Tensor range = torch::stack({lo_t, hi_t}).cpu();
      const std::int64_t lo = range[0].item<std::int64_t>(), hi = range[1].item<std::int64_t>();
      rel.c2p = rel.c2p - lo;
      rel.p2c = rel.p2c - lo;
      rel.embeddings = rel.embeddings.slice(0, lo, hi + 1);
    }
    if (!norm.is_empty()) rel.embeddings = norm(rel.embeddings);  // row by row: a slice normalises alike
    return rel;
  }

  bool relative_;
  std::int64_t buckets_, max_relative_;
};
TORCH_MODULE(Encoder);

class DebertaV2ModelImpl : public nn::Module {
 public:
  explicit DebertaV2ModelImpl(const DebertaV2Config& c) : max_length_(c.max_length()) {
    embeddings = register_module("embeddings", Embeddings(c));
    encoder = register_module("encoder", Encoder(c));
  }
  // -> every token's hidden state [B, T, H] (padding rows zero).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids) {
    const TokenLayout layout = TokenLayout::of(attention_mask);
    return layout.unpack(encoder(embed(input_ids, token_type_ids, layout), layout));
  }
  // -> each text's last hidden state at position 0 [B, H] (Encoder::first_tokens).
  torch::Tensor first_tokens(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                             const torch::Tensor& token_type_ids) {
    const TokenLayout layout = TokenLayout::of(attention_mask);
    return encoder->first_tokens(embed(input_ids, token_type_ids, layout), layout);
  }

  Embeddings embeddings{nullptr};
  Encoder encoder{nullptr};

 private:
  // Relative attention alone would take longer inputs; the limit stays the one every tool
  // truncates to (and absolute positions, when on, need it).
  torch::Tensor embed(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids, const TokenLayout& layout) {
    const std::int64_t t = input_ids.size(1);
    if (t > max_length_)
      throw Error(ErrorKind::kDataErr,
                  fmt::format("sequence of {} tokens is longer than max_position_embeddings {}", t, max_length_));
    return embeddings(input_ids, token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids), layout);
  }

  std::int64_t max_length_;
};
TORCH_MODULE(DebertaV2Model);

class ContextPoolerImpl : public nn::Module {
 public:
  explicit ContextPoolerImpl(const DebertaV2Config& c) : activation_(activation(c.pooler_hidden_act)) {
    dense = register_module("dense", Dense(c.hidden_size, c.hidden_size));
    dropout = register_module("dropout", nn::Dropout(c.pooler_dropout));
  }
  // first token [B, H] -> act(dense(dropout(first))) [B, H]
  torch::Tensor forward(const torch::Tensor& first) { return activation_(dense(dropout(first))); }

  Dense dense{nullptr};
  nn::Dropout dropout{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> activation_;
};
TORCH_MODULE(ContextPooler);

class DebertaV2ForSequenceClassificationImpl : public SequenceClassifier {
 public:
  explicit DebertaV2ForSequenceClassificationImpl(DebertaV2Config c) : config_(std::move(c)) {
    deberta = register_module("deberta", DebertaV2Model(config_));
    pooler = register_module("pooler", ContextPooler(config_));
    classifier = register_module("classifier", Dense(config_.hidden_size, config_.num_labels()));
    dropout = register_module("dropout", nn::Dropout(config_.classifier_dropout.value_or(config_.hidden_dropout_prob)));
    init_all();
  }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids) override {
    return classifier(dropout(pooler(deberta->first_tokens(input_ids, attention_mask, token_type_ids))));  // [B, L]
  }
  const ModelConfig& config() const override { return config_; }
  ModelConfig& config() override { return config_; }
  std::string_view base_prefix() const override { return "deberta."; }
  std::string_view label_layer() const override { return "classifier"; }
  void quantize(Quantization q) override {
    if (q == Quantization::kInt8) quantize_int8(*deberta->encoder);
  }

  DebertaV2Model deberta{nullptr};
  ContextPooler pooler{nullptr};
  Dense classifier{nullptr};
  nn::Dropout dropout{nullptr};

 private:
  DebertaV2Config config_;
};

std::shared_ptr<SequenceClassifier> DebertaV2Config::make_model() const {
  return std::make_shared<DebertaV2ForSequenceClassificationImpl>(*this);
}

// pos_att_type: a list, or the old "p2c|c2p" string that HF lower-cases and splits.
std::vector<std::string> read_pos_att_type(ConfigReader& r) {
  const Json* p = r.find("pos_att_type");
  std::vector<std::string> types;
  if (p == nullptr) return types;
  if (p->is_string()) {
    types = split_lower(p->get<std::string>());
  } else if (p->is_array()) {
    for (const Json& v : *p) {
      if (!v.is_string()) r.fail("pos_att_type", fmt::format("expected strings, got {}", v.dump()));
      types.push_back(v.get<std::string>());
    }
  } else {
    r.fail("pos_att_type", fmt::format("expected a list such as [\"p2c\", \"c2p\"], got {}", p->dump()));
  }
  for (const std::string& t : types)
    if (t != "c2p" && t != "p2c") r.fail("pos_att_type", fmt::format("'{}' is not supported (only c2p and p2c)", t));
  return types;
}

}  // namespace

std::unique_ptr<ModelConfig> parse_deberta_v2(const Json& j, const std::string& source) {
  auto c = std::make_unique<DebertaV2Config>();
  ConfigReader r(j, source);
  r.get("model_type", c->model_type);
  read_common(r, *c);
  r.get("hidden_size", c->hidden_size);
  r.get("num_hidden_layers", c->num_hidden_layers);
  r.get("num_attention_heads", c->num_attention_heads);
  r.get("intermediate_size", c->intermediate_size);
  r.get("hidden_act", c->hidden_act);
  r.get("hidden_dropout_prob", c->hidden_dropout_prob);
  r.get("attention_probs_dropout_prob", c->attention_probs_dropout_prob);
  r.get("type_vocab_size", c->type_vocab_size);
  r.get("layer_norm_eps", c->layer_norm_eps);
  r.get("relative_attention", c->relative_attention);
  r.get("max_relative_positions", c->max_relative_positions);
  r.get("position_biased_input", c->position_biased_input);
  c->pos_att_type = read_pos_att_type(r);
  r.get("pooler_dropout", c->pooler_dropout);
  r.get("pooler_hidden_act", c->pooler_hidden_act);
  r.get("share_att_key", c->share_att_key);
  r.get("position_buckets", c->position_buckets);
  r.get("norm_rel_ebd", c->norm_rel_ebd);
  std::int64_t embedding_size = 0;
  r.get("embedding_size", embedding_size);
  if (r.json().contains("embedding_size") && !r.json()["embedding_size"].is_null()) {
    if (embedding_size < 1) r.fail("embedding_size", "must be at least 1");
    c->embedding_size = embedding_size;
  }
  double cls_dropout = -1;
  r.get("cls_dropout", cls_dropout);
  if (cls_dropout >= 0) c->classifier_dropout = cls_dropout;

  // Keys HF's modules read with getattr that hfkit only accepts at their default: checked through a
  // second reader, so that they still ride along in `extra`.
  ConfigReader check(j, source);
  std::int64_t conv_kernel_size = 0;
  check.get("conv_kernel_size", conv_kernel_size);
  if (conv_kernel_size > 0)
    r.fail("conv_kernel_size", fmt::format("{}: the convolution layer after the first block is not supported (only 0)",
                                           conv_kernel_size));
  if (c->type_vocab_size < 0) r.fail("type_vocab_size", "must be at least 0");
  if (c->num_attention_heads >= 1 && c->hidden_size % c->num_attention_heads != 0)
    r.fail("num_attention_heads", fmt::format("hidden_size {} is not a multiple of {} heads", c->hidden_size,
                                              c->num_attention_heads));
  std::int64_t head_size = c->num_attention_heads >= 1 ? c->hidden_size / c->num_attention_heads : 0;
  check.get("attention_head_size", head_size);
  if (c->num_attention_heads >= 1 && head_size * c->num_attention_heads != c->hidden_size)
    r.fail("attention_head_size", fmt::format("{} x {} heads is not hidden_size {} (only hidden_size / heads)",
                                              head_size, c->num_attention_heads, c->hidden_size));
  std::int64_t pooler_hidden_size = c->hidden_size;
  check.get("pooler_hidden_size", pooler_hidden_size);
  if (pooler_hidden_size != c->hidden_size)
    r.fail("pooler_hidden_size", fmt::format("{} is not hidden_size {} (the classifier reads hidden_size)",
                                             pooler_hidden_size, c->hidden_size));
  for (const std::string& part : split_lower(c->norm_rel_ebd))
    if (part != "none" && part != "layer_norm")
      r.fail("norm_rel_ebd", fmt::format("'{}' is not supported (only none or layer_norm)", part));
  if (c->relative_attention && c->position_buckets > 0) {
    // Buckets of width 0 (mid 0) or a log base of 1 divide by zero in HF's bucketing.
    if (c->position_buckets < 2) r.fail("position_buckets", fmt::format("{} is not supported (at least 2)", c->position_buckets));
    if (c->max_relative() - 1 == c->position_buckets / 2)
      r.fail("position_buckets", fmt::format("{} with max_relative_positions {} leaves log buckets of base 1",
                                             c->position_buckets, c->max_relative()));
  }
  for (auto [key, act] : {std::pair{"hidden_act", &c->hidden_act}, {"pooler_hidden_act", &c->pooler_hidden_act}}) {
    try {
      activation(*act);
    } catch (const Error& e) {
      r.fail(key, e.what());
    }
  }
  finish_common(r, *c, {{"hidden_size", c->hidden_size}, {"num_hidden_layers", c->num_hidden_layers},
                        {"num_attention_heads", c->num_attention_heads}, {"intermediate_size", c->intermediate_size}});
  return c;
}

}  // namespace hf::model
