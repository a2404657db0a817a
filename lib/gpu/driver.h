// The CUDA driver, NVML and NCCL reached through dlopen, so that a binary using them starts (and
// answers "no GPU") on machines without a driver. Only the few entry points gpu-check needs are
// declared, with the types and values of the CUDA Driver API / NVML references; kernels.cu
// static_asserts them against cuda.h when the toolkit is there. Internal to lib/gpu.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "gpu/gpu.h"

namespace hf::gpu {

// A dlopen'ed shared library, closed on destruction.
class DynLib {
 public:
  // Opens `name` with RTLD_NOW | RTLD_LOCAL; on failure ok() is false and error() says why.
  // `never_unload` adds RTLD_NODELETE, for libraries such as libtorch whose threads and static
  // destructors must not outlive their code.
  explicit DynLib(const std::string& name, bool never_unload = false);
  bool ok() const { return handle_ != nullptr; }
  const std::string& error() const { return error_; }
  // The file the loader actually picked (resolved through the link map), or "" when not loaded.
  std::string path() const;
  // The symbol's address, or nullptr.
  void* symbol(const char* name) const;
  // Never dlclose this library: a thread left hanging inside it (see call_with_deadline) would run
  // on unmapped code.
  void keep_loaded();
  template <typename Fn>
  bool bind(Fn*& fn, const char* name) const {
    fn = reinterpret_cast<Fn*>(symbol(name));
    return fn != nullptr;
  }

 private:
  struct Closer {
    void operator()(void* handle) const;
  };
  std::unique_ptr<void, Closer> handle_;
  std::string error_;
};

// Driver API values used here (cuda.h: CUresult, CUdevice_attribute).
inline constexpr int kCudaSuccess = 0;
inline constexpr int kCudaErrorStubLibrary = 34;
inline constexpr int kCudaErrorNoDevice = 100;
inline constexpr int kAttrMultiprocessorCount = 16;
inline constexpr int kAttrEccEnabled = 32;
inline constexpr int kAttrComputeCapabilityMajor = 75;
inline constexpr int kAttrComputeCapabilityMinor = 76;

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::string pci_bus_id;  // "0000:18:00.0"
  int cc_major = 0;
  int cc_minor = 0;
  int sm_count = 0;
  std::uint64_t memory_total = 0;
  std::optional<std::uint64_t> memory_free;  // NVML, or the runtime once a context exists
  std::optional<bool> ecc;                    // driver attribute; NVML when the driver has none
  std::optional<bool> persistence_mode;       // NVML only
  std::optional<bool> mig_mode;               // NVML only
};

// Runs fn() on a thread of its own and waits at most `seconds`: its result, or nullopt when it has
// not returned by then. A call hanging in a driver cannot be cancelled: its thread is left behind
// and ends with the process, so fn must capture by value only (and its library must be kept
// loaded: DynLib::keep_loaded). Without a thread to spare, fn runs here, unbounded.
std::optional<int> call_with_deadline(std::function<int()> fn, double seconds);

// libcuda.so.1 through function pointers. Not thread-safe; one per process is enough.
class CudaDriver {
 public:
  // Loads the library and calls cuInit(0), waiting at most `init_timeout_s` for it. Never throws:
  // a missing library, a stub, no device, a failed or hung call leave ok() false and reason()
  // saying which, in one line.
  explicit CudaDriver(const std::string& library = "libcuda.so.1", double init_timeout_s = kDriverTimeoutDefaultS);
  bool ok() const { return ok_; }
  bool loaded() const { return lib_.ok(); }
  // cuInit did not return within the timeout: a driver is there but broken.
  bool hung() const { return hung_; }
  const std::string& reason() const { return reason_; }
  std::string path() const { return lib_.path(); }
  // CUDA version the driver supports, as cuDriverGetVersion encodes it (13000 = 13.0); 0 unknown.
  int cuda_version() const { return cuda_version_; }
  int device_count() const { return device_count_; }
  // Requires: ok() and 0 <= index < device_count(). Throws hf::Error(kUnavailable) if a query fails.
  DeviceInfo device(int index) const;

 private:
  using Fn0 = int(unsigned);
  using FnInt = int(int*);
  using FnDeviceGet = int(int*, int);
  using FnName = int(char*, int, int);
  using FnAttr = int(int*, int, int);
  using FnTotalMem = int(std::size_t*, int);
  using FnErr = int(int, const char**);

  std::string describe(int result) const;
  void check(int result, const char* call) const;

  DynLib lib_;
  bool ok_ = false;
  bool hung_ = false;
  std::string reason_;
  int cuda_version_ = 0;
  int device_count_ = 0;
  Fn0* init_ = nullptr;
  FnInt* driver_get_version_ = nullptr;
  FnInt* device_get_count_ = nullptr;
  FnDeviceGet* device_get_ = nullptr;
  FnName* device_get_name_ = nullptr;
  FnAttr* device_get_attribute_ = nullptr;
  FnTotalMem* device_total_mem_ = nullptr;
  FnName* device_get_pci_bus_id_ = nullptr;
  FnErr* get_error_name_ = nullptr;
  FnErr* get_error_string_ = nullptr;
};

// NVML (libnvidia-ml.so.1): driver release, ECC, persistence and MIG modes, free memory. Optional:
// containers get it only with the `utility` driver capability.
class Nvml {
 public:
  // Loads the library and calls nvmlInit_v2, waiting at most `init_timeout_s` for it.
  explicit Nvml(const std::string& library = "libnvidia-ml.so.1", double init_timeout_s = kDriverTimeoutDefaultS);
  ~Nvml();
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;
  bool ok() const { return ok_; }
  const std::string& reason() const { return reason_; }
  // "580.65.06", or "" when unknown.
  std::string driver_version() const;
  // Fills the NVML-only fields of `info` (found by PCI bus id); leaves them empty when unsupported.
  void fill(DeviceInfo& info) const;

 private:
  DynLib lib_;
  bool ok_ = false;
  std::string reason_;
};

// NCCL's version as "2.27.3" from ncclGetVersion in libnccl.so.2, or nullopt with `why` set.
// `path` gets the file that was loaded.
std::optional<std::string> nccl_version(std::string& why, std::string& path);

// "13.0" from cuDriverGetVersion/cudaRuntimeGetVersion's encoding (1000 * major + 10 * minor).
std::string cuda_version_string(int encoded);

}  // namespace hf::gpu
