#include "model/device.h"

#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <fmt/format.h>

#include <charconv>

#include "core/error.h"
#include "core/log.h"

namespace hf::model {

DeviceSetup resolve_device(const std::string& spec) {
  auto bad = [&] { return Error(ErrorKind::kUsage, "--device: expected auto, cpu, cuda or cuda:N, got '" + spec + "'"); };
  DeviceSetup setup;
  if (spec == "cpu") return setup;
  int index = 0;
  if (spec == "auto") {
    if (!torch::cuda::is_available()) {
      log::info("device: cpu (no CUDA device available)");
      return setup;
    }
  } else if (spec == "cuda" || spec.starts_with("cuda:")) {
    if (spec.size() > 5) {
      const char* b = spec.data() + 5;
      const char* e = spec.data() + spec.size();
      auto [p, ec] = std::from_chars(b, e, index);
      if (ec != std::errc() || p != e || index < 0) throw bad();
    } else if (spec.size() == 5) {
      throw bad();  // "cuda:" without an index
    }
    if (!torch::cuda::is_available())
      throw Error(ErrorKind::kUnavailable, "--device " + spec + ": no CUDA device available");
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      throw Error(ErrorKind::kUnavailable, fmt::format("--device {}: only {} CUDA device(s)", spec, count));
  } else {
    throw bad();
  }
  setup.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  c10::DeviceGuard guard(setup.device);
  // Compute capability >= 8.0 (Ampere+): bf16 tensor cores and TF32 matmuls.
  setup.autocast_bf16 = at::detail::getCUDAHooks().supportsBFloat16ConvolutionWithCuDNNv8();
  if (setup.autocast_bf16) {
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }
  log::info("device: {} ({})", setup.device.str(), setup.autocast_bf16 ? "bf16 autocast, TF32" : "fp32");
  return setup;
}

AutocastGuard::AutocastGuard(bool on) : on_(on) {
  if (!on_) return;
  prev_ = at::autocast::is_autocast_enabled(at::kCUDA);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
}

AutocastGuard::~AutocastGuard() {
  if (!on_) return;
  at::autocast::set_autocast_enabled(at::kCUDA, prev_);
  at::autocast::clear_cache();
}

}  // namespace hf::model
