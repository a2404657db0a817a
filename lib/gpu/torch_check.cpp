// libhfkit_gpu_torch.so: does the libtorch this project links see CUDA, count the same devices,
// and compute a matmul on each device that matches the same matmul on the CPU? Built as its own
// module (see torch_module.h); links only libtorch, so it carries none of hfkit's static code.
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "gpu/torch_module.h"

namespace {

using nlohmann::json;

constexpr int kMatmulSize = 256;         // [256, 256] x [256, 256]: small, but runs real cuBLAS
constexpr double kMatmulTolerance = 1e-3;  // FP32 (TF32 off) sums of 256 products in [-1, 1)

json check_device(int index) {
  json d = {{"index", index}, {"ok", false}, {"seconds", 0.0}, {"max_abs_err", nullptr}, {"error", ""}};
  auto t0 = std::chrono::steady_clock::now();
  try {
    at::Device device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
    torch::manual_seed(index);
    auto a = at::rand({kMatmulSize, kMatmulSize}) * 2 - 1;  // [256, 256] in [-1, 1)
    auto b = at::rand({kMatmulSize, kMatmulSize}) * 2 - 1;
    auto want = at::matmul(a.to(at::kDouble), b.to(at::kDouble));
    auto got = at::matmul(a.to(device), b.to(device)).to(at::kCPU).to(at::kDouble);
    double err = (got - want).abs().max().item<double>();
    d["max_abs_err"] = err;
    d["ok"] = err <= kMatmulTolerance;
    if (err > kMatmulTolerance) d["error"] = "matmul differs from the CPU result by " + std::to_string(err);
  } catch (const std::exception& e) {
    std::string what = e.what();
    d["error"] = what.substr(0, what.find('\n'));  // torch appends a C++ stack trace
  }
  d["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

}  // namespace

extern "C" char* hfkit_gpu_torch_check(const char* request_json) {
  json out = {{"torch_version", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                                    "." + std::to_string(TORCH_VERSION_PATCH)},
              {"cuda_runtime", nullptr},
              {"arch_list", HFKIT_TORCH_ARCH_LIST},
              {"cuda_available", false},
              {"device_count", 0},
              {"devices", json::array()},
              {"error", ""}};
  try {
    json request = json::parse(request_json);
    // Keep the comparison exact enough: TF32 would round inputs to 10 mantissa bits.
    at::globalContext().setAllowTF32CuBLAS(false);
    out["cuda_available"] = torch::cuda::is_available();
    out["device_count"] = static_cast<int>(torch::cuda::device_count());
    try {
      // The CUDA runtime libtorch_cuda was built with; throws when libtorch has no CUDA part.
      long v = at::detail::getCUDAHooks().versionCUDART();
      out["cuda_runtime"] = std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
    } catch (const std::exception&) {
    }
    if (out["cuda_available"].get<bool>())
      for (int index : request.at("devices")) out["devices"].push_back(check_device(index));
  } catch (const std::exception& e) {
    std::string what = e.what();
    out["error"] = what.substr(0, what.find('\n'));
  }
  std::string text = out.dump(-1, ' ', false, json::error_handler_t::replace);
  char* result = static_cast<char*>(std::malloc(text.size() + 1));
  if (result) std::memcpy(result, text.c_str(), text.size() + 1);
  return result;
}

extern "C" void hfkit_gpu_torch_free(char* response) { std::free(response); }
