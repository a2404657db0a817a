// hf::model::resolve_device on a machine without CUDA (CI): the spec grammar and the error kinds a
// wrong --device must map to. The CUDA branch is exercised where a GPU is (gpu-check, test-container).
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

TEST_CASE("device: cpu, and auto without CUDA, resolve to the CPU with fp32") {
  auto cpu = resolve_device("cpu");
  CHECK(cpu.device == torch::Device(torch::kCPU));
  CHECK_FALSE(cpu.autocast_bf16);
  if (torch::cuda::is_available()) return;
  auto dev = resolve_device("auto");
  CHECK(dev.device == torch::Device(torch::kCPU));
  CHECK_FALSE(dev.autocast_bf16);
}

TEST_CASE("device: malformed specs are usage errors, CUDA without a GPU is unavailable") {
  for (const char* spec : {"gpu", "", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda0"})
    CHECK_MESSAGE(kind_of(spec) == ErrorKind::kUsage, spec);
  if (torch::cuda::is_available()) return;
  for (const char* spec : {"cuda", "cuda:0", "cuda:3"}) CHECK_MESSAGE(kind_of(spec) == ErrorKind::kUnavailable, spec);
}
