// Dense: the affine layer (y = x W^T + b) every model family in lib/model builds on, in fp32 or, after
// quantize_int8(), on libtorch's fbgemm dynamic-int8 kernels. Holds HF's "weight"/"bias" parameters
// under those names, so safetensors keys are unchanged. Leaves out static (calibrated) quantization,
// int8 on CUDA and training through int8 weights.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string_view>

namespace hf::model {

// What --quantize asks of a model's encoder.
enum class Quantization { kNone, kInt8 };
std::string_view to_string(Quantization q);  // "none", "int8"
// "none" | "int8". Throws Error(kUsage) for any other value, listing the supported ones.
Quantization parse_quantization(std::string_view name);

// While one lives on this thread, new Dense layers, embeddings made by embedding() and every
// family's init_all() leave their weights undrawn (torch::empty), as HF's no_init_weights does for a
// checkpoint about to overwrite them: drawing MiniLM's 22M weights twice is ~0.25 s of a one-record
// hf-predict run. Nests; the previous state comes back on destruction.
class SkipInit {
 public:
  SkipInit();
  ~SkipInit();
  SkipInit(const SkipInit&) = delete;
  SkipInit& operator=(const SkipInit&) = delete;
  static bool active();

 private:
  bool previous_;
};

// torch::nn::Embedding(options), its weight left undrawn while a SkipInit is active.
torch::nn::Embedding embedding(torch::nn::EmbeddingOptions options);

class DenseImpl : public torch::nn::Module {
 public:
  // weight [out, in] and bias [out]; initialised as torch::nn::Linear does (callers that follow HF
  // re-draw them).
  DenseImpl(std::int64_t in_features, std::int64_t out_features);
  // x [..., in] -> [..., out]. Quantized: activations are quantized per call (one scale per batch,
  // from its min/max) and the result is dequantized, so callers see fp32 either way.
  torch::Tensor forward(const torch::Tensor& x);

  // Packs `weight` as int8, one symmetric scale per output row, for fbgemm's dynamic linear; the fp32
  // parameters stay (save_pretrained still writes them). Idempotent. Throws Error(kConfig) when the
  // weight is not on the CPU or the module is in training mode, Error(kUnavailable) when this CPU has
  // no fbgemm kernels (x86 without AVX2).
  void quantize_int8();
  bool quantized() const { return !packed_.isNone(); }
  // Refuses train(true) once quantized (Error(kConfig)): gradients cannot flow through packed int8
  // weights. train(false) (eval) is allowed.
  void train(bool on = true) override;

  torch::Tensor weight, bias;

 private:
  c10::IValue packed_;  // quantized::linear_prepack's LinearPackedParamsBase; None: fp32
};
TORCH_MODULE(Dense);

// Quantizes every Dense inside `module` (itself included); returns how many. Throws as
// DenseImpl::quantize_int8.
std::size_t quantize_int8(torch::nn::Module& module);

}  // namespace hf::model
