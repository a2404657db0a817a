// ModernBERT (HF modeling_modernbert.py, its eager/SDPA path): token embeddings + norm (no position
// embeddings), pre-norm layers with a fused Wqkv, rotary embeddings (one theta for global layers,
// another for local ones), alternating global / sliding-window attention (|i - j| <= local_attention / 2),
// a GeGLU MLP, a final norm, and ModernBertForSequenceClassification's "cls" or "mean" pooling,
// ModernBertPredictionHead (dense, activation, norm), dropout and classifier. Leaves out rope
// scaling (non-default rope_type) and flash-attention's deterministic mode (refused, exit 78).
#include <fmt/format.h>

#include <cmath>
#include <tuple>

#include "core/error.h"
#include "model/families.h"

namespace hf::model {
namespace {

namespace nn = torch::nn;

constexpr const char* kGlobal = "full_attention";      // layer_types' names, as HF writes them
constexpr const char* kLocal = "sliding_attention";

struct ModernBertConfig : ModelConfig {
  std::int64_t intermediate_size = 1152;
  std::int64_t num_hidden_layers = 22;
  std::int64_t num_attention_heads = 12;
  std::string hidden_activation = "gelu";
  double initializer_cutoff_factor = 2.0;
  double norm_eps = 1e-5;
  bool norm_bias = false, attention_bias = false, mlp_bias = false, classifier_bias = false;
  double attention_dropout = 0.0, embedding_dropout = 0.0, mlp_dropout = 0.0, classifier_dropout = 0.0;
  std::int64_t local_attention = 128;  // the whole window: a token sees local_attention / 2 on each side
  std::vector<bool> global_layers;     // per layer: full attention (else the sliding window)
  std::optional<std::int64_t> global_attn_every_n_layers;  // written back only when the file had it
  double global_rope_theta = 160000.0, local_rope_theta = 10000.0;
  nlohmann::ordered_json rope_parameters = nlohmann::ordered_json::object();  // as read, thetas refreshed
  std::string classifier_pooling = "cls";
  std::string classifier_activation = "gelu";
  bool deterministic_flash_attn = false;

  ModernBertConfig() {
    model_type = "modernbert";
    vocab_size = 50368;
    hidden_size = 768;
    max_position_embeddings = 8192;
    pad_token_id = 50283;
    type_vocab_size = 0;
  }
  std::int64_t head_dim() const { return hidden_size / num_attention_heads; }

  nlohmann::ordered_json to_json() const override {
    nlohmann::json j = common_json(*this, "ModernBertForSequenceClassification");
    j["hidden_size"] = hidden_size;
    j["intermediate_size"] = intermediate_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_attention_heads"] = num_attention_heads;
    j["hidden_activation"] = hidden_activation;
    j["initializer_cutoff_factor"] = initializer_cutoff_factor;
    j["norm_eps"] = norm_eps;
    j["norm_bias"] = norm_bias;
    j["attention_bias"] = attention_bias;
    j["attention_dropout"] = attention_dropout;
    j["embedding_dropout"] = embedding_dropout;
    j["mlp_bias"] = mlp_bias;
    j["mlp_dropout"] = mlp_dropout;
    j["local_attention"] = local_attention;
    nlohmann::json types = nlohmann::json::array();
    for (bool g : global_layers) types.push_back(g ? kGlobal : kLocal);
    j["layer_types"] = std::move(types);
    if (global_attn_every_n_layers) j["global_attn_every_n_layers"] = *global_attn_every_n_layers;
    nlohmann::json rope(rope_parameters);
    for (auto [type, theta] : {std::pair{kGlobal, global_rope_theta}, {kLocal, local_rope_theta}}) {
      if (!rope.contains(type)) rope[type] = {{"rope_type", "default"}};
      rope[type]["rope_theta"] = theta;
    }
    j["rope_parameters"] = std::move(rope);
    // transformers 4.x reads the thetas from these keys (5.x from rope_parameters, which wins).
    j["global_rope_theta"] = global_rope_theta;
    j["local_rope_theta"] = local_rope_theta;
    j["classifier_pooling"] = classifier_pooling;
    j["classifier_dropout"] = classifier_dropout;
    j["classifier_bias"] = classifier_bias;
    j["classifier_activation"] = classifier_activation;
    j["deterministic_flash_attn"] = deterministic_flash_attn;
    return nlohmann::ordered_json(j);
  }
  std::unique_ptr<ModelConfig> clone() const override { return std::make_unique<ModernBertConfig>(*this); }
  std::shared_ptr<SequenceClassifier> make_model() const override;
};

// A Dense whose bias is a constant zero buffer instead of a parameter: HF's nn.Linear(bias=False)
// has no "bias" key, and Dense (shared by every family, int8 included) always adds one. Adding
// zero leaves the fp32 products unchanged; the buffer follows ->to(device) and packs into int8.
class BiaslessDenseImpl : public DenseImpl {
 public:
  BiaslessDenseImpl(std::int64_t in_features, std::int64_t out_features) : DenseImpl(in_features, out_features) {
    parameters_.erase("bias");
    bias = register_buffer("bias", torch::zeros({out_features}));
  }
};

Dense linear(std::int64_t in_features, std::int64_t out_features, bool bias) {
  if (bias) return Dense(in_features, out_features);
  return Dense(std::shared_ptr<DenseImpl>(std::make_shared<BiaslessDenseImpl>(in_features, out_features)));
}

// nn.LayerNorm(bias=norm_bias): "weight", and "bias" only when asked (libtorch's LayerNorm has both
// or neither).
class NormImpl : public nn::Module {
 public:
  NormImpl(std::int64_t size, double eps, bool bias) : size_(size), eps_(eps) {
    weight = register_parameter("weight", torch::ones({size}));
    if (bias) this->bias = register_parameter("bias", torch::zeros({size}));
  }
  torch::Tensor forward(const torch::Tensor& x) { return torch::layer_norm(x, {size_}, weight, bias, eps_); }

  torch::Tensor weight, bias;

 private:
  std::int64_t size_;
  double eps_;
};
TORCH_MODULE(Norm);

Norm make_norm(const ModernBertConfig& c) { return Norm(c.hidden_size, c.norm_eps, c.norm_bias); }

// The cos / sin of rotary embeddings at some positions, [P, D] each (HF's default rope: both halves
// repeat the frequencies).
struct Rotary {
  torch::Tensor cos, sin;

  // positions [P] int64 (any shape; a last dim of D is added).
  static Rotary at(const torch::Tensor& positions, double theta, std::int64_t head_dim) {
    const auto f32 = positions.options().dtype(torch::kFloat);
    const torch::Tensor inv_freq =
        1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, f32) / static_cast<double>(head_dim));  // [D/2]
    const torch::Tensor freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq;                // [P, D/2]
    const torch::Tensor both = torch::cat({freqs, freqs}, /*dim=*/-1);                                // [P, D]
    return {both.cos(), both.sin()};
  }
  // x [P..., N, D] (P as the positions) -> x rotated, in float as HF does, back in x's dtype.
  torch::Tensor apply(const torch::Tensor& x) const {
    const torch::Tensor xf = x.to(torch::kFloat);
    const std::int64_t half = x.size(-1) / 2;
    const torch::Tensor rotated = torch::cat({-xf.narrow(-1, half, half), xf.narrow(-1, 0, half)}, /*dim=*/-1);
    return (xf * cos.unsqueeze(-2) + rotated * sin.unsqueeze(-2)).to(x.scalar_type());
  }
};

// What a layer of one attention type sees: its mask (in the layout) and its rotary angles.
struct LayerInputs {
  TokenLayout layout;
  Rotary rotary;
};

class ModernBertEmbeddingsImpl : public nn::Module {
 public:
  explicit ModernBertEmbeddingsImpl(const ModernBertConfig& c) {
    tok_embeddings = register_module(
        "tok_embeddings", embedding(nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
    norm = register_module("norm", make_norm(c));
    drop = register_module("drop", nn::Dropout(c.embedding_dropout));
  }
  // input_ids [B, T] -> [B, T, H], or [R, H] for the real tokens of a packed layout.
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout) {
    const torch::Tensor ids = layout.packed() ? input_ids.reshape({-1}).index_select(0, layout.index) : input_ids;
    return drop(norm(tok_embeddings(ids)));
  }

  nn::Embedding tok_embeddings{nullptr};
  Norm norm{nullptr};
  nn::Dropout drop{nullptr};
};
TORCH_MODULE(ModernBertEmbeddings);

class ModernBertAttentionImpl : public nn::Module {
 public:
  explicit ModernBertAttentionImpl(const ModernBertConfig& c)
      : num_heads_(c.num_attention_heads), head_dim_(c.head_dim()), dropout_p_(c.attention_dropout) {
    Wqkv = register_module("Wqkv", linear(c.hidden_size, 3 * c.hidden_size, c.attention_bias));
    Wo = register_module("Wo", linear(c.hidden_size, c.hidden_size, c.attention_bias));
    out_drop = register_module("out_drop", nn::Dropout(c.attention_dropout));
  }
  // x [B, T, H] or packed [R, H] -> the same shape.
  torch::Tensor forward(const torch::Tensor& x, const LayerInputs& in) {
    const auto [q, k, v] = project(x, in);
    const torch::Tensor context = attend(q, k, v, in.layout, num_heads_, is_training() ? dropout_p_ : 0.0);
    return out_drop(Wo(context));
  }
  // The output at each text's first token only, [B, H]: x as above. Keys and values still come
  // from every token; the queries of the other tokens are projected (Wqkv is one weight) but not used.
  torch::Tensor forward_first(const torch::Tensor& x, const LayerInputs& in) {
    const auto [q, k, v] = project(x, in);
    TokenLayout first_query = in.layout;  // a sliding-window mask [., 1, T, T]: query 0's row
    if (first_query.mask.defined() && first_query.mask.size(2) > 1) first_query.mask = first_query.mask.slice(2, 0, 1);
    return out_drop(
        Wo(attend_first(in.layout.first(q), k, v, first_query, num_heads_, is_training() ? dropout_p_ : 0.0)));
  }

  Dense Wqkv{nullptr}, Wo{nullptr};
  nn::Dropout out_drop{nullptr};

 private:
  // x -> q, k (rotated) and v, each of x's shape [..., H].
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project(const torch::Tensor& x, const LayerInputs& in) {
    std::vector<std::int64_t> shape = x.sizes().vec();
    shape.back() = 3;
    shape.push_back(num_heads_);
    shape.push_back(head_dim_);
    const torch::Tensor qkv = Wqkv(x).view(shape);  // [..., 3, N, D]: all heads' q, then k, then v
    return {in.rotary.apply(qkv.select(-3, 0)).flatten(-2), in.rotary.apply(qkv.select(-3, 1)).flatten(-2),
            qkv.select(-3, 2).flatten(-2)};
  }

  std::int64_t num_heads_, head_dim_;
  double dropout_p_;
};
TORCH_MODULE(ModernBertAttention);

// GeGLU: Wi makes [input, gate] (2 x intermediate); act(input) * gate goes through Wo.
class ModernBertMLPImpl : public nn::Module {
 public:
  explicit ModernBertMLPImpl(const ModernBertConfig& c) : act_(activation(c.hidden_activation)) {
    Wi = register_module("Wi", linear(c.hidden_size, 2 * c.intermediate_size, c.mlp_bias));
    drop = register_module("drop", nn::Dropout(c.mlp_dropout));
    Wo = register_module("Wo", linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
  }
  torch::Tensor forward(const torch::Tensor& x) {  // [..., H] -> [..., H]
    const std::vector<torch::Tensor> parts = Wi(x).chunk(2, /*dim=*/-1);  // [..., I] each
    return Wo(drop(act_(parts[0]) * parts[1]));
  }

  Dense Wi{nullptr}, Wo{nullptr};
  nn::Dropout drop{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> act_;
};
TORCH_MODULE(ModernBertMLP);

class ModernBertEncoderLayerImpl : public nn::Module {
 public:
  ModernBertEncoderLayerImpl(const ModernBertConfig& c, std::int64_t index)
      : global_(c.global_layers[static_cast<std::size_t>(index)]) {
    // Layer 0's input is the embeddings' norm already: HF gives it an Identity here.
    if (index > 0) attn_norm = register_module("attn_norm", make_norm(c));
    attn = register_module("attn", ModernBertAttention(c));
    mlp_norm = register_module("mlp_norm", make_norm(c));
    mlp = register_module("mlp", ModernBertMLP(c));
  }
  // x [B, T, H] or packed [R, H] -> the same shape.
  torch::Tensor forward(torch::Tensor x, const LayerInputs& global, const LayerInputs& local) {
    x = x + attn(attn_norm.is_empty() ? x : attn_norm(x), global_ ? global : local);
    return x + mlp(mlp_norm(x));
  }
  // The layer's output at each text's first token only, [B, H].
  torch::Tensor forward_first(const torch::Tensor& x, const TokenLayout& layout, const LayerInputs& global,
                              const LayerInputs& local) {
    const torch::Tensor normed = attn_norm.is_empty() ? x : attn_norm(x);
    const torch::Tensor a = layout.first(x) + attn->forward_first(normed, global_ ? global : local);  // [B, H]
    return a + mlp(mlp_norm(a));
  }
  bool global() const { return global_; }

  Norm attn_norm{nullptr}, mlp_norm{nullptr};
  ModernBertAttention attn{nullptr};
  ModernBertMLP mlp{nullptr};

 private:
  bool global_;
};
TORCH_MODULE(ModernBertEncoderLayer);

class ModernBertModelImpl : public nn::Module {
 public:
  explicit ModernBertModelImpl(const ModernBertConfig& c)
      : max_positions_(c.max_position_embeddings),
        head_dim_(c.head_dim()),
        half_window_(c.local_attention / 2),
        global_theta_(c.global_rope_theta),
        local_theta_(c.local_rope_theta) {
    embeddings = register_module("embeddings", ModernBertEmbeddings(c));
    layers = register_module("layers", nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(ModernBertEncoderLayer(c, i));
    final_norm = register_module("final_norm", make_norm(c));
  }
  // input_ids, attention_mask [B, T] (undefined mask: no padding) -> last hidden state [B, T, H],
  // zero at padding; with first_only, each text's state at position 0 only, [B, H], the last layer
  // run for that token only where last_layer_first_only allows. Throws Error(kDataErr) when T exceeds
  // max_position_embeddings.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, bool first_only = false) {
    const std::int64_t t = input_ids.size(1);
    if (t > max_positions_)
      throw Error(ErrorKind::kDataErr,
                  fmt::format("sequence of {} tokens is longer than max_position_embeddings {}", t, max_positions_));
    LayerInputs global{TokenLayout::of(attention_mask), {}};
    const TokenLayout& layout = global.layout;
    // Positions count from 0 in every row (HF's default position_ids), padding or not.
    const auto long_options = input_ids.options().dtype(torch::kLong);
    const torch::Tensor positions = layout.packed() ? layout.index.remainder(t) : torch::arange(t, long_options);
    global.rotary = Rotary::at(positions, global_theta_, head_dim_);
    LayerInputs local{layout, Rotary::at(positions, local_theta_, head_dim_)};
    if (half_window_ < t - 1) local.layout.mask = sliding_mask(layout, t, long_options);

    torch::Tensor x = embeddings(input_ids, layout);  // [B, T, H] or [R, H]
    const bool last_first = first_only && last_layer_first_only(*this, layers->size(), layout);
    const std::size_t full = layers->size() - (last_first ? 1 : 0);
    for (std::size_t i = 0; i < full; ++i) x = layers[i]->as<ModernBertEncoderLayerImpl>()->forward(x, global, local);
    if (last_first) return final_norm(layers[full]->as<ModernBertEncoderLayerImpl>()->forward_first(x, layout, global, local));
    if (first_only) return layout.first(final_norm(x));  // [B, H]
    return layout.unpack(final_norm(x));  // [B, T, H]
  }

  ModernBertEmbeddings embeddings{nullptr};
  nn::ModuleList layers{nullptr};
  Norm final_norm{nullptr};

 private:
  // Keys within half_window_ of the query ([1, 1, T, T] bool), and real ([B, 1, T, T]) when the
  // layout has padding. A padding query far from every real token would see no key at all; it
  // sees itself instead (its output is dropped), so no row of the softmax is empty.
  torch::Tensor sliding_mask(const TokenLayout& layout, std::int64_t t, const torch::TensorOptions& options) const {
    const torch::Tensor i = torch::arange(t, options);
    const torch::Tensor window = (i.unsqueeze(1) - i.unsqueeze(0)).abs().le(half_window_).view({1, 1, t, t});
    if (!layout.mask.defined()) return window;
    return window.logical_and(layout.mask).logical_or(torch::eye(t, options.dtype(torch::kBool)).view({1, 1, t, t}));
  }

  std::int64_t max_positions_, head_dim_, half_window_;
  double global_theta_, local_theta_;
};
TORCH_MODULE(ModernBertModel);

class ModernBertPredictionHeadImpl : public nn::Module {
 public:
  explicit ModernBertPredictionHeadImpl(const ModernBertConfig& c) : act_(activation(c.classifier_activation)) {
    dense = register_module("dense", linear(c.hidden_size, c.hidden_size, c.classifier_bias));
    norm = register_module("norm", make_norm(c));
  }
  torch::Tensor forward(const torch::Tensor& pooled) { return norm(act_(dense(pooled))); }  // [B, H] -> [B, H]

  Dense dense{nullptr};
  Norm norm{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> act_;
};
TORCH_MODULE(ModernBertPredictionHead);

// N(0, std) truncated to [-bound, bound] (torch.nn.init.trunc_normal_, which HF's ModernBERT uses):
// uniform over the CDF's image of the interval, through the inverse CDF.
void trunc_normal(torch::Tensor& p, double std, double bound) {
  const auto cdf = [](double z) { return 0.5 * (1.0 + std::erf(z / std::sqrt(2.0))); };
  const double lo = cdf(-bound / std), hi = cdf(bound / std);
  p.uniform_(2.0 * lo - 1.0, 2.0 * hi - 1.0).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(-bound, bound);
}

class ModernBertForSequenceClassificationImpl : public SequenceClassifier {
 public:
  explicit ModernBertForSequenceClassificationImpl(ModernBertConfig c) : config_(std::move(c)) {
    model = register_module("model", ModernBertModel(config_));
    head = register_module("head", ModernBertPredictionHead(config_));
    drop = register_module("drop", nn::Dropout(config_.classifier_dropout));
    classifier = register_module("classifier", Dense(config_.hidden_size, config_.num_labels()));
    init_all();
  }
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& /*token_type_ids: none in ModernBERT*/) override {
    torch::Tensor pooled;  // [B, H]
    if (config_.classifier_pooling == "mean") {
      const torch::Tensor h = model(input_ids, attention_mask);  // [B, T, H]
      const torch::Tensor mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
      pooled = (h * mask.unsqueeze(-1)).sum(/*dim=*/1) / mask.sum(/*dim=*/1, /*keepdim=*/true);
    } else {
      pooled = model(input_ids, attention_mask, /*first_only=*/true);
    }
    return classifier(drop(head(pooled)));  // [B, L]
  }
  const ModelConfig& config() const override { return config_; }
  ModelConfig& config() override { return config_; }
  std::string_view base_prefix() const override { return "model."; }
  std::string_view label_layer() const override { return "classifier"; }
  void quantize(Quantization q) override {
    if (q == Quantization::kInt8) quantize_int8(*model->layers);
  }

  ModernBertModel model{nullptr};
  ModernBertPredictionHead head{nullptr};
  nn::Dropout drop{nullptr};
  Dense classifier{nullptr};

 protected:
  // HF's ModernBertPreTrainedModel._init_weights: every weight matrix truncated normal within
  // initializer_cutoff_factor stds (the embeddings' padding row too), the output projections
  // scaled down by sqrt(2 * layers), the classifier at hidden_size^-0.5; biases 0, norms 1.
  void init_tensor(const std::string& name, torch::Tensor& p) override {
    if (name.ends_with(".bias")) {
      p.zero_();
      return;
    }
    if (is_layer_norm(name)) {
      p.fill_(1.0);
      return;
    }
    double std = config_.initializer_range;
    if (name.ends_with("attn.Wo.weight") || name.ends_with("mlp.Wo.weight") || name == "head.dense.weight")
      std /= std::sqrt(2.0 * static_cast<double>(config_.num_hidden_layers));
    else if (name == "classifier.weight")
      std = 1.0 / std::sqrt(static_cast<double>(config_.hidden_size));
    trunc_normal(p, std, config_.initializer_cutoff_factor * std);
  }

 private:
  ModernBertConfig config_;
};

std::shared_ptr<SequenceClassifier> ModernBertConfig::make_model() const {
  return std::make_shared<ModernBertForSequenceClassificationImpl>(*this);
}

// The thetas from rope_parameters ({"full_attention": {"rope_type": "default", "rope_theta": x},
// "sliding_attention": ...}), else from the older global_rope_theta / local_rope_theta keys.
void read_rope(ConfigReader& r, ModernBertConfig& c) {
  r.get("global_rope_theta", c.global_rope_theta);
  r.get("local_rope_theta", c.local_rope_theta);
  if (const Json* scaling = r.find("rope_scaling"))
    r.fail("rope_scaling", fmt::format("{} is not supported (only the default rope)", scaling->dump()));
  const Json* rope = r.find("rope_parameters");
  if (rope == nullptr) return;
  if (!rope->is_object()) r.fail("rope_parameters", fmt::format("expected an object, got {}", rope->dump()));
  c.rope_parameters = *rope;
  for (auto [type, theta] : {std::pair{kGlobal, &c.global_rope_theta}, {kLocal, &c.local_rope_theta}}) {
    const auto it = rope->find(type);
    if (it == rope->end() || it->is_null()) continue;
    const std::string key = fmt::format("rope_parameters.{}", type);
    if (!it->is_object()) r.fail(key, fmt::format("expected an object, got {}", it->dump()));
    if (const auto t = it->find("rope_type"); t != it->end() && *t != "default")
      r.fail(key + ".rope_type", fmt::format("{} is not supported (only \"default\")", t->dump()));
    if (const auto t = it->find("rope_theta"); t != it->end()) {
      if (!t->is_number()) r.fail(key + ".rope_theta", fmt::format("expected a number, got {}", t->dump()));
      *theta = t->get<double>();
    }
  }
}

// layer_types (one per layer), else every global_attn_every_n_layers-th layer global from layer 0.
void read_layer_types(ConfigReader& r, ModernBertConfig& c) {
  std::int64_t every = 3;
  if (r.find("global_attn_every_n_layers") != nullptr) {
    r.get("global_attn_every_n_layers", every);
    if (every < 1) r.fail("global_attn_every_n_layers", "must be at least 1");
    c.global_attn_every_n_layers = every;
  }
  const Json* types = r.find("layer_types");
  if (types == nullptr) {
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) c.global_layers.push_back(i % every == 0);
    return;
  }
  if (!types->is_array() || static_cast<std::int64_t>(types->size()) != c.num_hidden_layers)
    r.fail("layer_types", fmt::format("expected {} entries (num_hidden_layers), got {}", c.num_hidden_layers,
                                      types->dump()));
  for (const Json& t : *types) {
    if (t != kGlobal && t != kLocal)
      r.fail("layer_types", fmt::format("{} is not supported (expected \"{}\" or \"{}\")", t.dump(), kGlobal, kLocal));
    c.global_layers.push_back(t == kGlobal);
  }
}

}  // namespace

std::unique_ptr<ModelConfig> parse_modernbert(const Json& j, const std::string& source) {
  auto c = std::make_unique<ModernBertConfig>();
  ConfigReader r(j, source);
  r.get("model_type", c->model_type);
  read_common(r, *c);
  r.get("hidden_size", c->hidden_size);
  r.get("intermediate_size", c->intermediate_size);
  r.get("num_hidden_layers", c->num_hidden_layers);
  r.get("num_attention_heads", c->num_attention_heads);
  r.get("hidden_activation", c->hidden_activation);
  r.get("initializer_cutoff_factor", c->initializer_cutoff_factor);
  if (const auto it = j.find("initializer_cutoff_factor"); it != j.end() && it->is_null())
    c->initializer_cutoff_factor = 3.0;  // HF's fallback for an explicit null
  r.get("norm_eps", c->norm_eps);
  r.get("norm_bias", c->norm_bias);
  r.get("attention_bias", c->attention_bias);
  r.get("attention_dropout", c->attention_dropout);
  r.get("embedding_dropout", c->embedding_dropout);
  r.get("mlp_bias", c->mlp_bias);
  r.get("mlp_dropout", c->mlp_dropout);
  r.get("local_attention", c->local_attention);
  r.get("classifier_pooling", c->classifier_pooling);
  r.get("classifier_dropout", c->classifier_dropout);
  r.get("classifier_bias", c->classifier_bias);
  r.get("classifier_activation", c->classifier_activation);
  r.get("deterministic_flash_attn", c->deterministic_flash_attn);
  // reference_compile only chooses whether transformers torch.compile()s the model: same numbers.
  // decoder_bias, sparse_prediction, sparse_pred_ignore_index and tie_word_embeddings configure
  // the masked-LM head only; they ride along in `extra`.
  for (auto [key, v] : {std::pair{"hidden_size", c->hidden_size}, {"intermediate_size", c->intermediate_size},
                        {"num_hidden_layers", c->num_hidden_layers}, {"num_attention_heads", c->num_attention_heads}})
    if (v < 1) r.fail(key, "must be at least 1");
  if (c->hidden_size % c->num_attention_heads != 0)
    r.fail("num_attention_heads", fmt::format("hidden_size {} is not a multiple of {} heads", c->hidden_size,
                                              c->num_attention_heads));
  if (c->head_dim() % 2 != 0)
    r.fail("num_attention_heads", fmt::format("rotary embeddings need an even head size, got {}", c->head_dim()));
  if (const Json* d = r.find("head_dim"); d && *d != c->head_dim())
    r.fail("head_dim", fmt::format("{} is not supported (only hidden_size / num_attention_heads = {})", d->dump(),
                                   c->head_dim()));
  if (c->local_attention < 0) r.fail("local_attention", "must not be negative");
  read_layer_types(r, *c);
  read_rope(r, *c);
  for (auto [key, theta] : {std::pair{"global_rope_theta", c->global_rope_theta}, {"local_rope_theta", c->local_rope_theta}})
    if (!(theta > 0)) r.fail(key, fmt::format("must be positive, got {}", theta));
  for (auto [key, p] : {std::pair{"attention_dropout", c->attention_dropout}, {"embedding_dropout", c->embedding_dropout},
                        {"mlp_dropout", c->mlp_dropout}, {"classifier_dropout", c->classifier_dropout}})
    if (!(p >= 0 && p <= 1)) r.fail(key, fmt::format("must be within [0, 1], got {}", p));
  if (c->classifier_pooling != "cls" && c->classifier_pooling != "mean")
    r.fail("classifier_pooling", fmt::format("'{}' is not supported (expected cls or mean)", c->classifier_pooling));
  for (auto [key, name] : {std::pair{"hidden_activation", &c->hidden_activation},
                           {"classifier_activation", &c->classifier_activation}}) {
    try {
      activation(*name);
    } catch (const Error& e) {
      r.fail(key, e.what());
    }
  }
  if (c->deterministic_flash_attn)
    r.fail("deterministic_flash_attn", "true is not supported (it asks flash-attn for a deterministic backward; "
                                       "hfkit's attention is scaled_dot_product_attention): set it to false");
  finish_common(r, *c);
  return c;
}

}  // namespace hf::model
