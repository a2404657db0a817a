// Where a model runs, shared by hf-train and hf-predict: `--device auto|cpu|cuda|cuda:N`, and what
// CUDA on Ampere or newer turns on (TF32 matmuls, bf16 autocast around forward passes).
#pragma once

#include <torch/torch.h>

#include <string>

namespace hf::model {

struct DeviceSetup {
  torch::Device device{torch::kCPU};
  bool autocast_bf16 = false;  // CUDA device with bf16 tensor cores (compute capability >= 8.0)
};

// Resolves a --device spec and logs the choice. auto: cuda:0 when a CUDA device is present, else
// cpu. On an Ampere+ device also allows TF32 in cuBLAS/cuDNN (a process-wide setting).
// Throws Error(kUsage) for a malformed spec, Error(kUnavailable) for CUDA asked for and absent or a
// device index beyond the count.
DeviceSetup resolve_device(const std::string& spec);

// Scoped bf16 autocast on CUDA, as `with torch.autocast("cuda", dtype=torch.bfloat16)`. Autocast
// state is thread-local in ATen, so concurrent callers do not disturb each other. Off: no-op.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_;
  bool prev_ = false;
};

}  // namespace hf::model
