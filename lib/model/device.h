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

// Loads libtorch_cuda.so (and through it the CUDA libraries) once, unless the binary links it.
// hf-predict links only libtorch's CPU part: a CPU run never maps the ~370 MB of CUDA libraries nor
// runs their static initialisers, half of libtorch's start-up. Must run before anything asks ATen
// about CUDA: ATen picks its CUDA hooks on first use, for the whole process. False (and logged)
// when this libtorch has no CUDA part or it cannot be loaded.
bool load_cuda_runtime();
// The CUDA runtime libtorch was built with ("13.0"), loading it; "" without one.
std::string cuda_runtime_version();

// Resolves a --device spec and logs the choice. auto: cuda:0 when a CUDA device is present, else
// cpu (without loading the CUDA libraries when no NVIDIA driver is installed). On an Ampere+ device also allows TF32 in cuBLAS/cuDNN (a process-wide setting).
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
