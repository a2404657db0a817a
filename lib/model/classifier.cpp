// What every family shares: HF's activations, its weight initialisation rules, its choice of loss.
#include <fmt/format.h>

#include "core/error.h"
#include "model/model.h"

namespace hf::model {

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

bool is_layer_norm(std::string_view name) {
  if (name.find("LayerNorm") != std::string_view::npos || name.find("layer_norm") != std::string_view::npos)
    return true;
  // ModernBERT's norms: a module named "norm" or "<something>_norm" (attn_norm, final_norm, ...).
  const std::size_t last = name.rfind('.');
  if (last == std::string_view::npos) return false;
  const std::string_view module = name.substr(0, last);
  const std::string_view leaf = module.substr(module.rfind('.') == std::string_view::npos ? 0 : module.rfind('.') + 1);
  return leaf == "norm" || leaf.ends_with("_norm");
}

void SequenceClassifier::init_parameter(const std::string& name) {
  torch::NoGradGuard no_grad;
  auto params = named_parameters();  // find() points into this dict
  torch::Tensor* p = params.find(name);
  if (p == nullptr) throw Error(ErrorKind::kInternal, fmt::format("no parameter '{}' to initialise", name));
  init_tensor(name, *p);
}

void SequenceClassifier::init_tensor(const std::string& name, torch::Tensor& p) {
  const bool is_bias = name.ends_with(".bias");
  if (is_layer_norm(name)) {
    is_bias ? p.zero_() : p.fill_(1.0);
  } else if (is_bias) {
    p.zero_();
  } else {
    p.normal_(0.0, config().initializer_range);
    if (name.ends_with("embeddings.word_embeddings.weight")) p[config().pad_token_id].zero_();
  }
}

void SequenceClassifier::init_all() {
  if (SkipInit::active()) return;
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) init_tensor(p.key(), p.value());
}

ProblemType resolve_problem_type(const ModelConfig& config, const torch::Tensor& labels) {
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
