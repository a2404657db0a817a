// dlopen-based access to the CUDA driver API, NVML and NCCL (see driver.h). Function types follow
// the CUDA Driver API and NVML references; only plain ints, chars and pointers cross the boundary.
#include "gpu/driver.h"

#include <dlfcn.h>
#include <link.h>

#include <chrono>
#include <future>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"

namespace hf::gpu {

void DynLib::Closer::operator()(void* handle) const { dlclose(handle); }

DynLib::DynLib(const std::string& name, bool never_unload) {
  dlerror();
  handle_.reset(dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL | (never_unload ? RTLD_NODELETE : 0)));
  if (!handle_) {
    const char* why = dlerror();
    error_ = why ? why : name + ": cannot be loaded";
  }
}

std::string DynLib::path() const {
  if (!handle_) return {};
  link_map* map = nullptr;
  if (dlinfo(handle_.get(), RTLD_DI_LINKMAP, &map) != 0 || map == nullptr || map->l_name == nullptr) return {};
  return map->l_name;
}

void DynLib::keep_loaded() {
  if (!handle_) return;
  // dlopen(3): RTLD_NOLOAD | RTLD_NODELETE on a loaded library marks it never to be unloaded; the
  // handle stays valid (path(), symbols). Failing that, the handle is given up unclosed.
  if (void* again = dlopen(path().c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
    dlclose(again);
  else
    static_cast<void>(handle_.release());
}

void* DynLib::symbol(const char* name) const { return handle_ ? dlsym(handle_.get(), name) : nullptr; }

std::optional<int> call_with_deadline(std::function<int()> fn, double seconds) {
  auto done = std::make_shared<std::promise<int>>();
  std::future<int> result = done->get_future();
  try {
    std::thread([fn, done] { done->set_value(fn()); }).detach();
  } catch (const std::system_error&) {
    return fn();
  }
  if (result.wait_for(std::chrono::duration<double>(seconds)) != std::future_status::ready) return std::nullopt;
  return result.get();
}

std::string cuda_version_string(int encoded) {
  return fmt::format("{}.{}", encoded / 1000, (encoded % 1000) / 10);
}

namespace {

// Names for the results a machine without a usable driver returns, for when cuGetErrorName is
// itself unusable (values from cuda.h's CUresult).
const char* known_result_name(int result) {
  switch (result) {
    case 3: return "CUDA_ERROR_NOT_INITIALIZED";
    case kCudaErrorStubLibrary: return "CUDA_ERROR_STUB_LIBRARY";
    case 35: return "CUDA_ERROR_INSUFFICIENT_DRIVER";
    case 46: return "CUDA_ERROR_DEVICE_UNAVAILABLE";
    case kCudaErrorNoDevice: return "CUDA_ERROR_NO_DEVICE";
    case 101: return "CUDA_ERROR_INVALID_DEVICE";
    case 304: return "CUDA_ERROR_OPERATING_SYSTEM";
    case 803: return "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
    case 804: return "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE";
    case 999: return "CUDA_ERROR_UNKNOWN";
    default: return nullptr;
  }
}

}  // namespace

CudaDriver::CudaDriver(const std::string& library, double init_timeout_s) : lib_(library) {
  if (!lib_.ok()) {
    reason_ = "no CUDA driver: " + lib_.error();
    return;
  }
  bool bound = lib_.bind(init_, "cuInit") && lib_.bind(driver_get_version_, "cuDriverGetVersion") &&
               lib_.bind(device_get_count_, "cuDeviceGetCount") && lib_.bind(device_get_, "cuDeviceGet") &&
               lib_.bind(device_get_name_, "cuDeviceGetName") &&
               lib_.bind(device_get_attribute_, "cuDeviceGetAttribute") &&
               lib_.bind(device_total_mem_, "cuDeviceTotalMem_v2") &&
               lib_.bind(device_get_pci_bus_id_, "cuDeviceGetPCIBusId");
  lib_.bind(get_error_name_, "cuGetErrorName");
  lib_.bind(get_error_string_, "cuGetErrorString");
  if (!bound) {
    reason_ = "CUDA driver " + path() + " lacks a driver API entry point (too old or not a driver)";
    return;
  }
  if (driver_get_version_(&cuda_version_) != kCudaSuccess) cuda_version_ = 0;
  std::optional<int> done = call_with_deadline([init = init_] { return init(0); }, init_timeout_s);
  if (!done) {
    hung_ = true;
    reason_ = fmt::format("CUDA driver {} hangs: cuInit did not return within {:g} s", path(), init_timeout_s);
    lib_.keep_loaded();
    return;
  }
  int result = *done;
  if (result == kCudaErrorStubLibrary) {
    reason_ = "no CUDA driver: " + path() + " is the CUDA toolkit's stub library, not a driver (cuInit: " +
              describe(result) + ")";
    return;
  }
  if (result == kCudaErrorNoDevice) {
    reason_ = "no CUDA device: the driver (" + path() + ") sees none (cuInit: " + describe(result) + ")";
    return;
  }
  if (result != kCudaSuccess) {
    reason_ = "CUDA driver " + path() + " failed to initialise (cuInit: " + describe(result) + ")";
    return;
  }
  result = device_get_count_(&device_count_);
  if (result != kCudaSuccess) {
    reason_ = "cuDeviceGetCount failed: " + describe(result);
    return;
  }
  if (device_count_ == 0) {
    reason_ = "no CUDA device: the driver sees none";
    return;
  }
  ok_ = true;
}

std::string CudaDriver::describe(int result) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (get_error_name_ == nullptr || get_error_name_(result, &name) != kCudaSuccess || name == nullptr)
    name = known_result_name(result);
  if (get_error_string_ != nullptr && get_error_string_(result, &text) != kCudaSuccess) text = nullptr;
  std::string s = name ? fmt::format("{} ({})", name, result) : fmt::format("error {}", result);
  if (text) s += fmt::format(": {}", text);
  return s;
}

void CudaDriver::check(int result, const char* call) const {
  if (result != kCudaSuccess) throw Error(ErrorKind::kUnavailable, std::string(call) + " failed: " + describe(result));
}

DeviceInfo CudaDriver::device(int index) const {
  DeviceInfo info;
  info.index = index;
  int dev = 0;
  check(device_get_(&dev, index), "cuDeviceGet");
  char buf[256] = {};
  check(device_get_name_(buf, sizeof buf - 1, dev), "cuDeviceGetName");
  info.name = buf;
  char bus[32] = {};
  check(device_get_pci_bus_id_(bus, sizeof bus - 1, dev), "cuDeviceGetPCIBusId");
  info.pci_bus_id = bus;
  check(device_get_attribute_(&info.cc_major, kAttrComputeCapabilityMajor, dev), "cuDeviceGetAttribute");
  check(device_get_attribute_(&info.cc_minor, kAttrComputeCapabilityMinor, dev), "cuDeviceGetAttribute");
  check(device_get_attribute_(&info.sm_count, kAttrMultiprocessorCount, dev), "cuDeviceGetAttribute");
  int ecc = 0;
  if (device_get_attribute_(&ecc, kAttrEccEnabled, dev) == kCudaSuccess) info.ecc = ecc != 0;
  std::size_t total = 0;
  check(device_total_mem_(&total, dev), "cuDeviceTotalMem");
  info.memory_total = total;
  return info;
}

namespace {

// NVML types and values (nvml.h): nvmlReturn_t is an int, NVML_SUCCESS 0; nvmlEnableState_t
// NVML_FEATURE_ENABLED 1; nvmlMemory_t {total, free, used}.
constexpr int kNvmlSuccess = 0;
constexpr int kNvmlFeatureEnabled = 1;
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
using NvmlDevice = void*;

}  // namespace

Nvml::Nvml(const std::string& library, double init_timeout_s) : lib_(library) {
  if (!lib_.ok()) {
    reason_ = lib_.error();
    return;
  }
  int (*init)() = nullptr;
  if (!lib_.bind(init, "nvmlInit_v2")) {
    reason_ = "nvmlInit_v2 missing";
    return;
  }
  std::optional<int> done = call_with_deadline([init] { return init(); }, init_timeout_s);
  if (!done) {
    lib_.keep_loaded();
    reason_ = fmt::format("nvmlInit_v2 did not return within {:g} s", init_timeout_s);
    return;
  }
  int result = *done;
  if (result != kNvmlSuccess) {
    const char* (*error_string)(int) = nullptr;
    reason_ = fmt::format("nvmlInit_v2 failed: {}",
                          lib_.bind(error_string, "nvmlErrorString") ? error_string(result) : std::to_string(result));
    return;
  }
  ok_ = true;
}

Nvml::~Nvml() {
  int (*shutdown)() = nullptr;
  if (ok_ && lib_.bind(shutdown, "nvmlShutdown")) shutdown();
}

std::string Nvml::driver_version() const {
  int (*get)(char*, unsigned) = nullptr;
  char buf[96] = {};
  if (!ok_ || !lib_.bind(get, "nvmlSystemGetDriverVersion") || get(buf, sizeof buf) != kNvmlSuccess) return {};
  return buf;
}

void Nvml::fill(DeviceInfo& info) const {
  int (*by_bus)(const char*, NvmlDevice*) = nullptr;
  NvmlDevice dev = nullptr;
  if (!ok_ || !lib_.bind(by_bus, "nvmlDeviceGetHandleByPciBusId_v2") ||
      by_bus(info.pci_bus_id.c_str(), &dev) != kNvmlSuccess)
    return;
  int (*persistence)(NvmlDevice, int*) = nullptr;
  int mode = 0;
  if (lib_.bind(persistence, "nvmlDeviceGetPersistenceMode") && persistence(dev, &mode) == kNvmlSuccess)
    info.persistence_mode = mode == kNvmlFeatureEnabled;
  int (*mig)(NvmlDevice, unsigned*, unsigned*) = nullptr;
  unsigned current = 0, pending = 0;
  if (lib_.bind(mig, "nvmlDeviceGetMigMode") && mig(dev, &current, &pending) == kNvmlSuccess)
    info.mig_mode = current == 1;
  int (*ecc)(NvmlDevice, int*, int*) = nullptr;
  int ecc_current = 0, ecc_pending = 0;
  if (!info.ecc && lib_.bind(ecc, "nvmlDeviceGetEccMode") && ecc(dev, &ecc_current, &ecc_pending) == kNvmlSuccess)
    info.ecc = ecc_current == kNvmlFeatureEnabled;
  int (*memory)(NvmlDevice, NvmlMemory*) = nullptr;
  NvmlMemory mem{};
  if (lib_.bind(memory, "nvmlDeviceGetMemoryInfo") && memory(dev, &mem) == kNvmlSuccess) info.memory_free = mem.free;
}

std::optional<std::string> nccl_version(std::string& why, std::string& path) {
  DynLib lib("libnccl.so.2");
  if (!lib.ok()) {
    why = lib.error();
    return std::nullopt;
  }
  path = lib.path();
  int (*get_version)(int*) = nullptr;
  int code = 0;
  if (!lib.bind(get_version, "ncclGetVersion") || get_version(&code) != 0) {
    why = path + ": ncclGetVersion failed";
    return std::nullopt;
  }
  // nccl.h: NCCL_VERSION(X,Y,Z) is X*10000+Y*100+Z since 2.9, X*1000+Y*100+Z before.
  int major = code >= 10000 ? code / 10000 : code / 1000;
  int rest = code >= 10000 ? code % 10000 : code % 1000;
  return fmt::format("{}.{}.{}", major, rest / 100, rest % 100);
}

}  // namespace hf::gpu
