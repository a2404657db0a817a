#include "model/device.h"

#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <fmt/format.h>

#include <dlfcn.h>

#include <charconv>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"

namespace hf::model {
namespace {

// The directory of the libtorch_cpu.so this process runs: libtorch_cuda.so is its sibling in every
// layout libtorch ships (the wheel's torch/lib, the libtorch zip's lib/).
std::filesystem::path libtorch_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&at::globalContext), &info) == 0 || info.dli_fname == nullptr) return {};
  return std::filesystem::path(info.dli_fname).parent_path();
}

bool driver_installed() {
  // Loading the driver's library does not initialise it (cuInit does), so this costs a few ms.
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (driver == nullptr) return false;
  dlclose(driver);
  return true;
}

}  // namespace

bool load_cuda_runtime() {
  static const bool loaded = [] {
    // Linked in (hf-train, the tests): nothing to load, and its hooks registered at start-up.
    if (dlopen("libtorch_cuda.so", RTLD_NOW | RTLD_NOLOAD) != nullptr) return true;
    const std::filesystem::path lib = libtorch_dir() / "libtorch_cuda.so";
    std::error_code ec;
    if (!std::filesystem::exists(lib, ec)) {
      log::debug("CUDA: {} is absent (a CPU-only libtorch)", lib.string());
      return false;
    }
    // RTLD_GLOBAL as Python's torch does: libtorch_cuda's static initialisers register its CUDA
    // kernels and ATen's CUDA hooks, and libraries it loads later resolve against it.
    if (dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE) == nullptr) {
      const char* why = dlerror();
      log::warn("CUDA: cannot load {}: {}", lib.string(), why ? why : "unknown error");
      return false;
    }
    return true;
  }();
  return loaded;
}

std::string cuda_runtime_version() {
  if (!load_cuda_runtime()) return {};
  const long v = at::detail::getCUDAHooks().versionCUDART();  // e.g. 13000
  return fmt::format("{}.{}", v / 1000, v % 1000 / 10);
}

DeviceSetup resolve_device(const std::string& spec) {
  auto bad = [&] { return Error(ErrorKind::kUsage, "--device: expected auto, cpu, cuda or cuda:N, got '" + spec + "'"); };
  DeviceSetup setup;
  if (spec == "cpu") return setup;
  int index = 0;
  if (spec == "auto") {
    // Without a driver there is no device to find: CPU, without loading the CUDA libraries.
    if (!driver_installed() || !load_cuda_runtime() || !torch::cuda::is_available()) {
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
    if (!load_cuda_runtime())
      throw Error(ErrorKind::kUnavailable, "--device " + spec + ": this libtorch has no CUDA (libtorch_cuda.so)");
    if (!torch::cuda::is_available())
      throw Error(ErrorKind::kUnavailable,
                  fmt::format("--device {}: no CUDA device available (CUDA runtime {} loaded; NVIDIA driver {})", spec,
                              cuda_runtime_version(), driver_installed() ? "found" : "not found"));
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
  log::info("device: {} ({})", setup.device.str(), setup.autocast_bf16 ? "bf16 tensor cores, TF32" : "fp32");
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
