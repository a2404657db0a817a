// Dense (model/dense.h): fp32 through torch::linear, int8 through the fbgemm ops PyTorch's own
// dynamic quantization calls (quantized::linear_prepack / quantized::linear_dynamic), reached through
// the dispatcher by name, since the wheel ships no public C++ wrapper for them.
#include "model/dense.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace hf::model {
namespace {

// fbgemm's AVX2 kernels (vpmaddubsw) add u8*s8 products pairwise in int16, so one operand must give
// up a bit: 2 * 255 * 63 fits, 2 * 255 * 127 can saturate. PyTorch takes it from the activations
// (7-bit, reduce_range); we take it from the weights, which have one scale per output channel,
// while the activations share one scale per batch and suffer more from a lost bit. On MiniLM
// fine-tuned for sentiment (cli.predict_int8's fixture), measured against fp32 on 1,000 reviews:
// labels agree 99.4% (max |p diff| 0.087) this way, 98.7% (0.149) PyTorch's way.
// Weights are symmetric in [-63, 63]: zero point 0, so fbgemm skips the weight-offset terms.
constexpr double kWeightMax = 63.0;
constexpr bool kReduceRange = false;  // activations: full 8 bits

c10::OperatorHandle op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

// Drops libtorch warnings inside quantize_int8 (see there).
class SilentWarnings : public c10::WarningHandler {
 public:
  void process(const c10::Warning&) override {}
} silent;

thread_local bool skip_init = false;

bool has_fbgemm() {
  const auto& engines = at::globalContext().supportedQEngines();
  return std::any_of(engines.begin(), engines.end(),
                     [](at::QEngine e) { return e == at::QEngine::FBGEMM || e == at::QEngine::X86; });
}

}  // namespace

std::string_view to_string(Quantization q) { return q == Quantization::kInt8 ? "int8" : "none"; }

Quantization parse_quantization(std::string_view name) {
  if (name == "none" || name.empty()) return Quantization::kNone;
  if (name == "int8") return Quantization::kInt8;
  throw Error(ErrorKind::kUsage, fmt::format("--quantize: unknown value '{}' (supported: none, int8)", name));
}

SkipInit::SkipInit() : previous_(skip_init) { skip_init = true; }
SkipInit::~SkipInit() { skip_init = previous_; }
bool SkipInit::active() { return skip_init; }

torch::nn::Embedding embedding(torch::nn::EmbeddingOptions options) {
  // With _weight given, torch::nn::Embedding registers that tensor instead of drawing N(0, 1).
  if (skip_init) options._weight(torch::empty({options.num_embeddings(), options.embedding_dim()}));
  return torch::nn::Embedding(options);
}

DenseImpl::DenseImpl(std::int64_t in_features, std::int64_t out_features) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  bias = register_parameter("bias", torch::empty({out_features}));
  if (skip_init) return;
  // torch::nn::Linear's default: kaiming-uniform weight, bias uniform in +-1/sqrt(in).
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, /*a=*/std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  torch::nn::init::uniform_(bias, -bound, bound);
}

torch::Tensor DenseImpl::forward(const torch::Tensor& x) {
  if (packed_.isNone()) return torch::linear(x, weight, bias);
  torch::jit::Stack stack{x.contiguous(), packed_, kReduceRange};
  static const c10::OperatorHandle linear = op("quantized::linear_dynamic");
  linear.callBoxed(&stack);
  return stack.back().toTensor();  // [..., out] fp32, bias added
}

void DenseImpl::quantize_int8() {
  if (quantized()) return;
  if (!weight.device().is_cpu())
    throw Error(ErrorKind::kConfig, fmt::format("int8 quantization runs on the CPU only (fbgemm); this model is on {}",
                                                weight.device().str()));
  if (is_training())
    throw Error(ErrorKind::kConfig, "int8 quantization is for inference: put the model in eval mode first");
  if (!has_fbgemm())
    throw Error(ErrorKind::kUnavailable, "int8 quantization needs libtorch's fbgemm kernels (an x86 CPU with AVX2)");
  torch::NoGradGuard no_grad;
  const torch::Tensor w = weight.detach().to(torch::kFloat).contiguous();                    // [out, in]
  const torch::Tensor scales = (w.abs().amax(/*dim=*/1).to(torch::kDouble) / kWeightMax).clamp_min(1e-12);  // [out]
  const torch::Tensor zero_points = torch::zeros({w.size(0)}, torch::kLong);
  // libtorch warns (once, on stderr) that quantized tensor creation is deprecated; stderr is the
  // user's, and the packed weights below are all this layer keeps of the quantized tensor.
  c10::WarningUtils::WarningHandlerGuard quiet(&silent);
  const torch::Tensor q = torch::quantize_per_channel(w, scales, zero_points, /*axis=*/0, torch::kQInt8);
  torch::jit::Stack stack{q, std::optional<torch::Tensor>(bias.detach().to(torch::kFloat).contiguous())};
  op("quantized::linear_prepack").callBoxed(&stack);
  packed_ = std::move(stack.back());
}

void DenseImpl::train(bool on) {
  if (on && quantized())
    throw Error(ErrorKind::kConfig, "an int8-quantized model cannot be trained: load the fp32 model instead");
  torch::nn::Module::train(on);
}

std::size_t quantize_int8(torch::nn::Module& module) {
  std::size_t n = 0;
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (auto* dense = m->as<DenseImpl>()) {
      dense->quantize_int8();
      ++n;
    }
  }
  return n;
}

}  // namespace hf::model
