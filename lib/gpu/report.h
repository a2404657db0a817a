// The gpu-check report: what was found and each check's verdict, rendered as text or as the
// stable JSON object documented in tools/gpu-check/README.md (schema_version 1). Internal to lib/gpu.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gpu/driver.h"

namespace hf::gpu {

enum class Status { kPass, kFail, kSkip };

struct CheckResult {
  std::string name;         // kernel_launch, gemm, memory, bandwidth, nccl, torch, ...
  int device = -1;          // -1 = not about one device
  Status status = Status::kSkip;
  double seconds = 0;
  std::string detail;       // one line: what was measured, or why it failed / was skipped
  std::vector<std::pair<std::string, double>> values;  // numbers worth keeping (GB/s, errors)
};

struct Report {
  // This binary.
  std::string hfkit_version;
  bool built_with_cuda = false;
  std::string cuda_runtime;  // "13.0" (the runtime compiled in), "" without CUDA
  std::string cuda_archs;    // CMAKE_CUDA_ARCHITECTURES, e.g. "80-real,90-real,90-virtual"
  // The machine.
  bool driver_loaded = false;
  std::string driver_library;
  std::string driver_version;       // NVML's "580.65.06", "" unknown
  std::string driver_cuda_version;  // "13.0", "" unknown
  bool nvml_loaded = false;
  std::string nvml_error;
  bool gpu_available = false;
  std::string reason;  // why not available
  std::vector<DeviceInfo> devices;
  std::vector<CheckResult> checks;

  bool passed() const;
};

const char* status_name(Status s);
std::string to_json(const Report& report);  // one line + "\n"
std::string to_text(const Report& report);

}  // namespace hf::gpu
