// gpu-check's flow: driver (dlopen) -> devices (+ NVML) -> global checks (driver vs runtime,
// device count, NCCL) -> per-device checks (own kernels, GEMM, memory, bandwidth, compute
// capability) -> libtorch checks in the dlopen'ed module -> report. Nothing CUDA-related is
// touched before the driver answered, so a machine without one gets its answer at once.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "core/env.h"
#include "core/error.h"
#include "core/log.h"
#include "gpu/arch.h"
#include "gpu/driver.h"
#include "gpu/gpu.h"
#include "gpu/report.h"
#include "gpu/torch_module.h"
#if HFKIT_CUDA
#include "gpu/kernels.h"
#endif

namespace hf::gpu {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kGemmSize = 512;                   // m = n = 512, k = 520 (not a tile multiple)
constexpr int kGemmSizeQuick = 256;
constexpr std::size_t kBandwidthBytes = 256 << 20;  // per copy; large enough to reach peak PCIe/NVLink-C2C

CheckResult make(std::string name, int device, Status status, std::string detail, double seconds = 0) {
  CheckResult r;
  r.name = std::move(name);
  r.device = device;
  r.status = status;
  r.detail = std::move(detail);
  r.seconds = seconds;
  return r;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The driver must support the runtime's major version; an older minor still runs cubins (CUDA
// minor version compatibility) but cannot JIT PTX from the newer toolkit.
CheckResult driver_vs_runtime(int driver, int runtime) {
  std::string d = cuda_version_string(driver);
  std::string rt = cuda_version_string(runtime);
  if (driver / 1000 < runtime / 1000)
    return make("driver_version", -1, Status::kFail,
                fmt::format("driver supports CUDA {} but this binary's runtime is CUDA {}: update the driver", d, rt));
  if (driver < runtime)
    return make("driver_version", -1, Status::kPass,
                fmt::format("driver supports CUDA {}, runtime {}: runs by minor version compatibility (no PTX JIT of "
                            "newer code)",
                            d, rt));
  return make("driver_version", -1, Status::kPass, fmt::format("driver supports CUDA {}, runtime {}", d, rt));
}

std::string module_path() {
  if (auto path = hf::env("HFKIT_GPU_TORCH_MODULE")) return *path;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return kTorchModuleFile;
  return (exe.parent_path().parent_path() / "lib" / kTorchModuleFile).string();
}

// Loads the libtorch module and turns its answer into checks: torch_cuda (CUDA seen, same device
// count as the driver), then per device torch_archs (libtorch carries code for it) and
// torch_matmul (a cuBLAS matmul equals the CPU's).
void torch_checks(const std::vector<DeviceInfo>& devices, int driver_count, Report& report) {
  auto t0 = Clock::now();
  std::string path = module_path();
  DynLib lib(path, /*never_unload=*/true);
  char* (*check)(const char*) = nullptr;
  void (*release)(char*) = nullptr;
  if (!lib.ok() || !lib.bind(check, kTorchCheckSymbol) || !lib.bind(release, kTorchFreeSymbol)) {
    report.checks.push_back(make("torch_cuda", -1, Status::kFail,
                                 "cannot load the libtorch checks: " + (lib.ok() ? path + ": entry point missing" : lib.error()),
                                 since(t0)));
    return;
  }
  json request = {{"devices", json::array()}};
  for (const auto& d : devices) request["devices"].push_back(d.index);
  std::unique_ptr<char, decltype(release)> raw(check(request.dump().c_str()), release);
  if (!raw) throw Error(ErrorKind::kInternal, "libtorch check returned nothing");
  json answer = json::parse(raw.get());
  double seconds = since(t0);
  std::string err = answer.value("error", "");
  bool available = answer.value("cuda_available", false);
  int count = answer.value("device_count", 0);
  std::string runtime = answer["cuda_runtime"].is_string() ? answer["cuda_runtime"].get<std::string>() : "?";
  std::string what = fmt::format("libtorch {} (CUDA {})", answer.value("torch_version", "?"), runtime);
  CheckResult cuda = make("torch_cuda", -1, Status::kPass,
                          fmt::format("{} sees CUDA with {} device(s), as the driver does", what, count), seconds);
  if (!err.empty()) {
    cuda.status = Status::kFail;
    cuda.detail = what + ": " + err;
  } else if (!available) {
    cuda.status = Status::kFail;
    cuda.detail = what + " does not see CUDA (torch::cuda::is_available() is false)";
  } else if (count != driver_count) {
    cuda.status = Status::kFail;
    cuda.detail = fmt::format("{} sees {} device(s), the driver {}", what, count, driver_count);
  }
  report.checks.push_back(cuda);
  if (!available) return;

  std::string arch_list = answer.value("arch_list", "");
  for (const auto& d : devices) {
    int cc = d.cc_major * 10 + d.cc_minor;
    if (arch_list.empty()) {
      report.checks.push_back(make("torch_archs", d.index, Status::kSkip, "libtorch's arch list was not known at build time"));
    } else {
      std::string image = pick_image(parse_torch_archs(arch_list), cc);
      report.checks.push_back(make("torch_archs", d.index, image.empty() ? Status::kFail : Status::kPass,
                                   image.empty() ? fmt::format("libtorch has no code for sm_{} (it carries {})", cc, arch_list)
                                                 : fmt::format("libtorch runs {} (it carries {})", image, arch_list)));
    }
  }
  for (const auto& dev : answer["devices"]) {
    bool ok = dev.value("ok", false);
    CheckResult r = make("torch_matmul", dev.value("index", -1), ok ? Status::kPass : Status::kFail, "",
                         dev.value("seconds", 0.0));
    if (dev["max_abs_err"].is_number()) r.values = {{"max_abs_err", dev["max_abs_err"].get<double>()}};
    r.detail = ok ? fmt::format("256x256 matmul on the GPU matches the CPU (max abs err {:.2e})",
                                dev["max_abs_err"].get<double>())
                  : dev.value("error", "failed");
    report.checks.push_back(r);
  }
}

// The flags' ranges again, for callers other than gpu-check's parser and for NaN, which passes
// every range comparison (CLI::Range included).
void validate(const CheckOptions& o) {
  auto within = [](const char* flag, double v, double lo, double hi) {
    if (!std::isfinite(v) || v < lo || v > hi)
      throw Error(ErrorKind::kUsage, fmt::format("{} {}: expected a number from {:g} to {:g}", flag, v, lo, hi));
  };
  within("--memory-fraction", o.memory_fraction, kMemoryFractionMin, kMemoryFractionMax);
  within("--min-compute-capability", o.min_compute_capability, 0, kComputeCapabilityMax);
  within("--driver-timeout", o.driver_timeout_s, 0, kDriverTimeoutMaxS);
}

}  // namespace

Outcome run_check(const CheckOptions& o, std::ostream& out) {
  validate(o);
  Report report;
  report.hfkit_version = HFKIT_VERSION;
#if HFKIT_CUDA
  report.built_with_cuda = true;
  report.cuda_runtime = cuda_version_string(cuda::runtime_version());
  report.cuda_archs = HFKIT_CUDA_ARCHS;
#endif
  auto emit = [&] { out << (o.json ? to_json(report) : to_text(report)); };

  CudaDriver driver("libcuda.so.1", o.driver_timeout_s);
  report.driver_loaded = driver.loaded();
  report.driver_library = driver.path();
  if (driver.cuda_version() > 0) report.driver_cuda_version = cuda_version_string(driver.cuda_version());
  if (!driver.ok()) {
    report.reason = driver.reason();
    // No GPU passes unless one is required; a driver that hangs is a broken machine either way.
    if (o.require_gpu || driver.hung()) report.checks.push_back(make("gpu", -1, Status::kFail, report.reason));
    if (o.expect_devices >= 0)
      report.checks.push_back(make("device_count", -1, o.expect_devices == 0 ? Status::kPass : Status::kFail,
                                   fmt::format("expected {} device(s), found none", o.expect_devices)));
    if (o.require_gpu) {
      if (o.json) emit();
      throw Error(ErrorKind::kUnavailable, report.reason);
    }
    emit();
    return report.passed() ? Outcome::kOk : Outcome::kNo;
  }
  report.gpu_available = true;
  if (o.device >= driver.device_count())
    throw Error(ErrorKind::kUsage, fmt::format("--device {}: there are only {} device(s)", o.device, driver.device_count()));

  Nvml nvml("libnvidia-ml.so.1", o.driver_timeout_s);
  report.nvml_loaded = nvml.ok();
  report.nvml_error = nvml.reason();
  report.driver_version = nvml.driver_version();
  for (int i = 0; i < driver.device_count(); ++i) {
    if (o.device >= 0 && i != o.device) continue;
    DeviceInfo info = driver.device(i);
    nvml.fill(info);
    report.devices.push_back(info);
  }
  log::debug("driver {} found {} device(s)", report.driver_library, driver.device_count());

#if HFKIT_CUDA
  if (driver.cuda_version() > 0) report.checks.push_back(driver_vs_runtime(driver.cuda_version(), cuda::runtime_version()));
#endif
  if (o.expect_devices >= 0)
    report.checks.push_back(make("device_count", -1,
                                 driver.device_count() == o.expect_devices ? Status::kPass : Status::kFail,
                                 fmt::format("expected {} device(s), found {}", o.expect_devices, driver.device_count())));
  {
    auto t0 = Clock::now();
    std::string why, path;
    auto version = nccl_version(why, path);
    report.checks.push_back(make("nccl", -1, version ? Status::kPass : Status::kFail,
                                 version ? fmt::format("NCCL {} ({})", *version, path) : "NCCL not loadable: " + why,
                                 since(t0)));
  }
  for (auto& d : report.devices) {
    double cc = d.cc_major + d.cc_minor / 10.0;
    if (o.min_compute_capability > 0)
      report.checks.push_back(make("compute_capability", d.index,
                                   cc + 1e-9 >= o.min_compute_capability ? Status::kPass : Status::kFail,
                                   fmt::format("{}.{} (required >= {:.1f})", d.cc_major, d.cc_minor, o.min_compute_capability)));
#if HFKIT_CUDA
    log::info("checking device {} ({})", d.index, d.name);
    report.checks.push_back(cuda::kernel_launch(d, HFKIT_CUDA_ARCHS));
    int size = o.quick ? kGemmSizeQuick : kGemmSize;
    report.checks.push_back(cuda::gemm(d.index, size, size, size + 8));
    report.checks.push_back(cuda::memory(d.index, o.memory_fraction, d.memory_free));
    if (o.quick)
      report.checks.push_back(make("bandwidth", d.index, Status::kSkip, "--quick"));
    else
      report.checks.push_back(cuda::bandwidth(d.index, kBandwidthBytes));
#else
    report.checks.push_back(make("kernel_launch", d.index, Status::kFail,
                                 "built without CUDA (HFKIT_CUDA=OFF): this binary has no kernels to check"));
#endif
  }
  if (o.skip_torch)
    report.checks.push_back(make("torch_cuda", -1, Status::kSkip, "--skip-torch"));
  else
    torch_checks(report.devices, driver.device_count(), report);
  emit();
  return report.passed() ? Outcome::kOk : Outcome::kNo;
}

}  // namespace hf::gpu
