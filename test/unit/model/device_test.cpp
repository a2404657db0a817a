// hf::model::resolve_device: the spec grammar and the error kinds a wrong --device must map to; each
// case checks the CPU answers without CUDA and the CUDA ones where a GPU is (no early return).
#include <torch/cuda.h>

#include "core/error.h"
#include "model/device.h"
#undef CHECK  // libtorch's c10 logging defines its own CHECK; doctest's must win in this file.
#include <doctest/doctest.h>

using hf::Error;
using hf::ErrorKind;
using hf::model::resolve_device;

namespace {
ErrorKind kind_of(const std::string& spec) {
  try {
    resolve_device(spec);
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("no error for --device ", spec);
  return ErrorKind::kInternal;
}
}  // namespace

TEST_CASE("device: cpu resolves to the CPU with fp32, auto to cuda:0 where CUDA is and to the CPU elsewhere") {
  auto cpu = resolve_device("cpu");
  CHECK(cpu.device == torch::Device(torch::kCPU));
  CHECK_FALSE(cpu.autocast_bf16);
  auto dev = resolve_device("auto");
  if (torch::cuda::is_available()) {
    CHECK(dev.device == torch::Device(torch::kCUDA, 0));
  } else {
    CHECK(dev.device == torch::Device(torch::kCPU));
    CHECK_FALSE(dev.autocast_bf16);
  }
}

TEST_CASE("device: malformed specs are usage errors, CUDA absent or beyond the device count is unavailable") {
  for (const char* spec : {"gpu", "", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda0"})
    CHECK_MESSAGE(kind_of(spec) == ErrorKind::kUsage, spec);
  const int count = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (count == 0) {
    for (const char* spec : {"cuda", "cuda:0", "cuda:3"}) CHECK_MESSAGE(kind_of(spec) == ErrorKind::kUnavailable, spec);
  } else {
    CHECK(resolve_device("cuda").device == torch::Device(torch::kCUDA, 0));
    CHECK(resolve_device("cuda:" + std::to_string(count - 1)).device == torch::Device(torch::kCUDA, count - 1));
    CHECK(kind_of("cuda:" + std::to_string(count)) == ErrorKind::kUnavailable);
  }
}
