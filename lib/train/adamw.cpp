// AdamW as torch.optim.AdamW(fused=True) computes it (ATen's _fused_adamw_: decoupled weight decay,
// bias-corrected moments; https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html), with
// its state kept by parameter name in safetensors.
#include <fmt/format.h>

#include "core/error.h"
#include "train/internal.h"

namespace hf::train {

bool AdamW::no_decay(const std::string& name) {
  return name.ends_with(".bias") || model::is_layer_norm(name);
}

AdamW::AdamW(const torch::OrderedDict<std::string, torch::Tensor>& params, Options options) : options_(options) {
  groups_.resize(2);
  groups_[0].weight_decay = options.weight_decay;
  groups_[1].weight_decay = 0.0;
  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    if (!p.value().requires_grad()) continue;
    Group& g = groups_[no_decay(p.key()) ? 1 : 0];
    g.names.push_back(p.key());
    g.params.push_back(p.value());
    g.exp_avg.push_back(torch::zeros_like(p.value(), torch::MemoryFormat::Preserve));
    g.exp_avg_sq.push_back(torch::zeros_like(p.value(), torch::MemoryFormat::Preserve));
    // The fused kernel keeps a float step count per parameter, on the parameter's device.
    g.steps.push_back(torch::zeros({}, p.value().options().dtype(torch::kFloat)));
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  for (Group& g : groups_) {
    std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
    for (std::size_t i = 0; i < g.params.size(); ++i) {
      const torch::Tensor& grad = g.params[i].grad();
      if (!grad.defined()) continue;
      params.push_back(g.params[i]);
      grads.push_back(grad);
      exp_avg.push_back(g.exp_avg[i]);
      exp_avg_sq.push_back(g.exp_avg_sq[i]);
      steps.push_back(g.steps[i]);
    }
    if (params.empty()) continue;
    at::_foreach_add_(steps, 1);  // torch.optim.AdamW counts the step before the kernel reads it
    at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr, options_.beta1,
                      options_.beta2, g.weight_decay, options_.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
  ++steps_;
}

std::vector<torch::Tensor> AdamW::state_tensors() const {
  std::vector<torch::Tensor> out;
  for (const Group& g : groups_) {
    out.insert(out.end(), g.exp_avg.begin(), g.exp_avg.end());
    out.insert(out.end(), g.exp_avg_sq.begin(), g.exp_avg_sq.end());
    out.insert(out.end(), g.steps.begin(), g.steps.end());
  }
  return out;
}

void AdamW::save(const std::string& path) const {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const Group& g : groups_) {
    for (std::size_t i = 0; i < g.names.size(); ++i) {
      tensors.emplace_back(g.names[i] + ".exp_avg", g.exp_avg[i].to(torch::kCPU));
      tensors.emplace_back(g.names[i] + ".exp_avg_sq", g.exp_avg_sq[i].to(torch::kCPU));
      tensors.emplace_back(g.names[i] + ".step", g.steps[i].to(torch::kCPU).reshape({1}));
    }
  }
  save_tensors(path, tensors,
               {{"format", "hfkit-adamw"},
                {"version", "1"},
                {"step", std::to_string(steps_)},
                {"beta1", fmt::format("{}", options_.beta1)},
                {"beta2", fmt::format("{}", options_.beta2)},
                {"eps", fmt::format("{}", options_.eps)},
                {"weight_decay", fmt::format("{}", options_.weight_decay)}});
}

void AdamW::load(const std::string& path) {
  const TensorFile file = load_tensors(path);
  auto meta = [&](const std::string& key) -> std::string {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw Error(ErrorKind::kDataErr, Where{path, 0, key}, "missing from __metadata__");
    return it->second;
  };
  if (meta("format") != "hfkit-adamw" || meta("version") != "1")
    throw Error(ErrorKind::kDataErr, Where{path, 0, "format"}, "not an hfkit AdamW state (version 1)");
  std::int64_t steps = 0;
  try {
    steps = std::stoll(meta("step"));
  } catch (const std::exception&) {
    throw Error(ErrorKind::kDataErr, Where{path, 0, "step"}, "expected an integer");
  }
  std::size_t expected = 0;
  torch::NoGradGuard no_grad;
  for (Group& g : groups_) {
    for (std::size_t i = 0; i < g.names.size(); ++i) {
      auto restore = [&](const std::string& suffix, torch::Tensor& into) {
        const std::string key = g.names[i] + suffix;
        const torch::Tensor* t = file.find(key);
        if (t == nullptr) throw Error(ErrorKind::kDataErr, Where{path, 0, key}, "tensor missing");
        if (t->numel() != into.numel() || t->scalar_type() != torch::kFloat)
          throw Error(ErrorKind::kDataErr, Where{path, 0, key},
                      fmt::format("expected F32 with {} elements", into.numel()));
        into.copy_(t->reshape(into.sizes()));
      };
      restore(".exp_avg", g.exp_avg[i]);
      restore(".exp_avg_sq", g.exp_avg_sq[i]);
      restore(".step", g.steps[i]);
      expected += 3;
    }
  }
  if (file.tensors.size() != expected)
    throw Error(ErrorKind::kDataErr, Where{path, 0, ""},
                fmt::format("{} tensors, but this model's optimizer has {}", file.tensors.size(), expected));
  steps_ = steps;
}

}  // namespace hf::train
