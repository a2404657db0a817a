// GPU checks behind gpu-check: probe the CUDA driver (dlopen, so machines without one get an
// answer), list devices, and check that this binary's kernels launch and compute right, memory,
// bandwidth, NCCL and libtorch's CUDA. The CUDA parts exist only when built with HFKIT_CUDA.
#pragma once

#include <ostream>

#include "core/error.h"

namespace hf::gpu {

// Bounds of the numeric options (the flags' ranges; run_check enforces them too, NaN included).
inline constexpr double kMemoryFractionMin = 0.01;
inline constexpr double kMemoryFractionMax = 0.95;
inline constexpr double kComputeCapabilityMax = 100;
// Seconds a driver's initialisation (cuInit, nvmlInit) may take before it counts as hung. Large
// nodes without persistence mode take seconds per GPU; a hung driver takes forever.
inline constexpr double kDriverTimeoutDefaultS = 60;
inline constexpr double kDriverTimeoutMaxS = 3600;

struct CheckOptions {
  bool json = false;                // one JSON object on stdout (schema: tools/gpu-check/README.md)
  bool require_gpu = false;         // no driver/device is an error (hf::Error kUnavailable)
  double min_compute_capability = 0;  // e.g. 9.0; 0 = any
  int expect_devices = -1;          // -1 = any number
  bool quick = false;               // skip bandwidth, smaller GEMM
  int device = -1;                  // -1 = every device
  double memory_fraction = 0.8;     // share of free memory the allocation check takes
  bool skip_torch = false;          // leave out the libtorch checks (they load libtorch, ~0.5 s)
  double driver_timeout_s = kDriverTimeoutDefaultS;  // cuInit / nvmlInit taking longer: it hangs
};

// Runs the checks and writes the report (text or JSON) to `out`. Returns true when every check
// passed, false when one failed (the report says which); a driver whose cuInit hangs fails the
// `gpu` check. Throws hf::Error: kUnavailable when require_gpu is set and there is no usable driver
// or device (the JSON report is written first), kUsage when `device` does not exist or a number is
// out of its range or not finite (nothing is written then).
Outcome run_check(const CheckOptions& options, std::ostream& out);

}  // namespace hf::gpu
