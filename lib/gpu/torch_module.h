// The C interface between gpu-check and libhfkit_gpu_torch.so, the libtorch checks built as a
// separate module: gpu-check dlopens it only after the driver found a device, so the no-GPU
// answer never pays libtorch's start-up (~0.5 s). JSON in, JSON out, C linkage. Internal.
#pragma once

// Request: {"devices": [0, 1]}. Response (malloc'ed, free with hfkit_gpu_torch_free):
// {"torch_version": "2.15.0", "cuda_runtime": "13.2" | null, "arch_list": "sm_80 sm_90 ...",
//  "cuda_available": bool, "device_count": int, "error": "" ,
//  "devices": [{"index": 0, "ok": bool, "seconds": s, "max_abs_err": e, "error": ""}]}
extern "C" __attribute__((visibility("default"))) char* hfkit_gpu_torch_check(const char* request_json);
extern "C" __attribute__((visibility("default"))) void hfkit_gpu_torch_free(char* response);

namespace hf::gpu {
inline constexpr const char* kTorchModuleFile = "libhfkit_gpu_torch.so";
inline constexpr const char* kTorchCheckSymbol = "hfkit_gpu_torch_check";
inline constexpr const char* kTorchFreeSymbol = "hfkit_gpu_torch_free";
}  // namespace hf::gpu
