// The checks that run this binary's own CUDA code (kernels.cu, compiled only with HFKIT_CUDA):
// each sets the device, runs, verifies against the host and never throws — a CUDA error becomes
// a failed CheckResult naming the call and the error. Internal to lib/gpu.
#pragma once

#include <cstddef>
#include <optional>

#include "gpu/report.h"

namespace hf::gpu::cuda {

// CUDART_VERSION of the runtime compiled in (13000 = 13.0).
int runtime_version();

// A tiny kernel launches and writes what the host expects. A missing image for the device's
// architecture is reported as such, naming the archs this binary carries (`archs`).
CheckResult kernel_launch(const DeviceInfo& device, const char* archs);
// Our tiled SGEMM, C[m, n] = A[m, k] · B[k, n], against gemm_reference on the CPU.
CheckResult gemm(int device, int m, int n, int k);
// Allocates `fraction` of the free memory, writes a pattern over all of it and counts mismatches
// on the device. Sets `free_bytes` from cudaMemGetInfo.
CheckResult memory(int device, double fraction, std::optional<std::uint64_t>& free_bytes);
// Host->device, device->host (pinned) and device->device copies of `bytes`, timed with events and
// verified after the round trip.
CheckResult bandwidth(int device, std::size_t bytes);

}  // namespace hf::gpu::cuda
