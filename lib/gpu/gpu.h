// GPU checks behind gpu-check: probe the CUDA driver (dlopen, so machines without one get an
// answer), list devices, and check that this binary's kernels launch and compute right, memory,
// bandwidth, NCCL and libtorch's CUDA. The CUDA parts exist only when built with HFKIT_CUDA.
#pragma once

#include <ostream>

#include "core/error.h"

namespace hf::gpu {

struct CheckOptions {
  bool json = false;                // one JSON object on stdout (schema: tools/gpu-check/README.md)
  bool require_gpu = false;         // no driver/device is an error (hf::Error kUnavailable)
  double min_compute_capability = 0;  // e.g. 9.0; 0 = any
  int expect_devices = -1;          // -1 = any number
  bool quick = false;               // skip bandwidth, smaller GEMM
  int device = -1;                  // -1 = every device
  double memory_fraction = 0.8;     // share of free memory the allocation check takes
  bool skip_torch = false;          // leave out the libtorch checks (they load libtorch, ~0.5 s)
};

// Runs the checks and writes the report (text or JSON) to `out`. Returns true when every check
// passed, false when one failed (the report says which). Throws hf::Error: kUnavailable when
// require_gpu is set and there is no usable driver or device (the JSON report is written first),
// kUsage when `device` does not exist.
Outcome run_check(const CheckOptions& options, std::ostream& out);

}  // namespace hf::gpu
