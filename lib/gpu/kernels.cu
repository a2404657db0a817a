// This binary's own CUDA code: a launch probe, a tiled SGEMM checked against the CPU reference,
// a whole-allocation memory pattern test and copy bandwidth. Compiled to cubins for each real arch
// in HFKIT_CUDA_ARCHS plus PTX of the newest (so newer GPUs JIT it); cudart is linked statically
// and only called after the dlopen'ed driver was found.
#include <cuda.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gpu/arch.h"
#include "gpu/driver.h"
#include "gpu/kernels.h"
#include "gpu/reference.h"

// driver.h declares these driver API values by hand (it must build without the toolkit).
static_assert(hf::gpu::kCudaErrorStubLibrary == CUDA_ERROR_STUB_LIBRARY);
static_assert(hf::gpu::kCudaErrorNoDevice == CUDA_ERROR_NO_DEVICE);
static_assert(hf::gpu::kAttrMultiprocessorCount == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
static_assert(hf::gpu::kAttrEccEnabled == CU_DEVICE_ATTRIBUTE_ECC_ENABLED);
static_assert(hf::gpu::kAttrComputeCapabilityMajor == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
static_assert(hf::gpu::kAttrComputeCapabilityMinor == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);

namespace hf::gpu::cuda {

namespace {

constexpr int kTile = 16;             // SGEMM tile edge: 16x16 threads, two 1 KiB shared tiles
constexpr int kThreads = 256;         // threads per block for the 1-D kernels
constexpr int kBandwidthReps = 10;    // timed copies per direction (after one warm-up)
constexpr int kGemmReps = 5;          // timed SGEMM launches (after one warm-up)
constexpr std::uint32_t kSalt = 0x5bd1e995u;

struct CudaFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void ok(cudaError_t e, const char* call) {
  if (e != cudaSuccess)
    throw CudaFailure(fmt::format("{}: {} ({}): {}", call, cudaGetErrorName(e), static_cast<int>(e),
                                  cudaGetErrorString(e)));
}

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
struct HostFree {
  void operator()(void* p) const { cudaFreeHost(p); }
};
template <typename T>
using DeviceBuffer = std::unique_ptr<T, DeviceFree>;
template <typename T>
using PinnedBuffer = std::unique_ptr<T, HostFree>;

template <typename T>
DeviceBuffer<T> device_alloc(std::size_t count) {
  void* p = nullptr;
  ok(cudaMalloc(&p, count * sizeof(T)), "cudaMalloc");
  return DeviceBuffer<T>(static_cast<T*>(p));
}

template <typename T>
PinnedBuffer<T> pinned_alloc(std::size_t count) {
  void* p = nullptr;
  ok(cudaMallocHost(&p, count * sizeof(T)), "cudaMallocHost");
  return PinnedBuffer<T>(static_cast<T*>(p));
}

// Two events bracketing work on the default stream.
class Timer {
 public:
  Timer() {
    ok(cudaEventCreate(&start_), "cudaEventCreate");
    ok(cudaEventCreate(&stop_), "cudaEventCreate");
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void start() { ok(cudaEventRecord(start_), "cudaEventRecord"); }
  double stop_seconds() {
    ok(cudaEventRecord(stop_), "cudaEventRecord");
    ok(cudaEventSynchronize(stop_), "cudaEventSynchronize");
    float ms = 0;
    ok(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
    return ms / 1000.0;
  }

 private:
  cudaEvent_t start_{};
  cudaEvent_t stop_{};
};

__host__ __device__ std::uint32_t pattern(std::uint64_t i, std::uint32_t salt) {
  return static_cast<std::uint32_t>(i * 2654435761u) ^ static_cast<std::uint32_t>(i >> 32) ^ salt;
}

__global__ void fill_pattern(std::uint32_t* out, std::uint64_t n, std::uint32_t salt) {
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x)
    out[i] = pattern(i, salt);
}

__global__ void count_mismatches(const std::uint32_t* in, std::uint64_t n, std::uint32_t salt,
                                 unsigned long long* mismatches) {
  unsigned long long local = 0;
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x)
    local += in[i] != pattern(i, salt);
  if (local) atomicAdd(mismatches, local);
}

// C[m, n] = A[m, k] · B[k, n], row-major; one thread per C element, kTile x kTile tiles in
// shared memory; edges are zero-padded so any m, n, k work.
__global__ void sgemm_tiled(int m, int n, int k, const float* a, const float* b, float* c) {
  __shared__ float a_tile[kTile][kTile];
  __shared__ float b_tile[kTile][kTile];
  int row = blockIdx.y * kTile + threadIdx.y;
  int col = blockIdx.x * kTile + threadIdx.x;
  float acc = 0.0f;
  for (int t = 0; t < k; t += kTile) {
    a_tile[threadIdx.y][threadIdx.x] = (row < m && t + threadIdx.x < k) ? a[row * k + t + threadIdx.x] : 0.0f;
    b_tile[threadIdx.y][threadIdx.x] = (t + threadIdx.y < k && col < n) ? b[(t + threadIdx.y) * n + col] : 0.0f;
    __syncthreads();
    for (int p = 0; p < kTile; ++p) acc = fmaf(a_tile[threadIdx.y][p], b_tile[p][threadIdx.x], acc);
    __syncthreads();
  }
  if (row < m && col < n) c[row * n + col] = acc;
}

int grid_for(std::uint64_t n, int sm_count) {
  std::uint64_t blocks = (n + kThreads - 1) / kThreads;
  std::uint64_t cap = static_cast<std::uint64_t>(sm_count > 0 ? sm_count : 1) * 32;  // enough to fill every SM
  return static_cast<int>(blocks < cap ? blocks : cap);
}

int sm_count(int device) {
  int n = 0;
  ok(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return n;
}

// Runs `body` timed on the wall clock; a CudaFailure becomes a failed result.
template <typename Body>
CheckResult timed(const char* name, int device, Body body) {
  CheckResult r;
  r.name = name;
  r.device = device;
  auto t0 = std::chrono::steady_clock::now();
  try {
    ok(cudaSetDevice(device), "cudaSetDevice");
    body(r);
  } catch (const std::exception& e) {
    r.status = Status::kFail;
    r.detail = e.what();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace

int runtime_version() { return CUDART_VERSION; }

CheckResult kernel_launch(const DeviceInfo& device, const char* archs) {
  return timed("kernel_launch", device.index, [&](CheckResult& r) {
    int cc = device.cc_major * 10 + device.cc_minor;
    cudaFuncAttributes attr{};
    cudaError_t e = cudaFuncGetAttributes(&attr, fill_pattern);
    if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction) {
      r.status = Status::kFail;
      r.detail = fmt::format("no kernel image for sm_{} in this binary (it carries {}): rebuild with "
                             "HFKIT_CUDA_ARCHS including {}",
                             cc, archs, cc);
      return;
    }
    if (e == cudaErrorUnsupportedPtxVersion) {
      r.status = Status::kFail;
      r.detail = fmt::format("this binary's PTX is newer than the driver can JIT for sm_{}: update the driver", cc);
      return;
    }
    ok(e, "cudaFuncGetAttributes");
    constexpr std::uint64_t kWords = 1 << 20;
    auto buf = device_alloc<std::uint32_t>(kWords);
    fill_pattern<<<grid_for(kWords, device.sm_count), kThreads>>>(buf.get(), kWords, kSalt);
    ok(cudaGetLastError(), "kernel launch");
    std::vector<std::uint32_t> host(kWords);
    ok(cudaMemcpy(host.data(), buf.get(), kWords * sizeof(std::uint32_t), cudaMemcpyDeviceToHost), "cudaMemcpy");
    std::uint64_t bad = 0;
    for (std::uint64_t i = 0; i < kWords; ++i) bad += host[i] != pattern(i, kSalt);
    std::string image = pick_image(parse_cmake_archs(archs), cc);
    r.values = {{"binary_version", attr.binaryVersion}, {"ptx_version", attr.ptxVersion}};
    r.status = bad == 0 ? Status::kPass : Status::kFail;
    r.detail = fmt::format("{} on sm_{} (binaryVersion {}, ptxVersion {}){}", image.empty() ? "image" : image, cc,
                           attr.binaryVersion, attr.ptxVersion,
                           bad ? fmt::format(": {} of {} words wrong", bad, kWords) : "");
  });
}

CheckResult gemm(int device, int m, int n, int k) {
  return timed("gemm", device, [&](CheckResult& r) {
    std::vector<float> a(static_cast<std::size_t>(m) * k), b(static_cast<std::size_t>(k) * n);
    fill_uniform(a, 1);
    fill_uniform(b, 2);
    auto da = device_alloc<float>(a.size());
    auto db = device_alloc<float>(b.size());
    auto dc = device_alloc<float>(static_cast<std::size_t>(m) * n);
    ok(cudaMemcpy(da.get(), a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    ok(cudaMemcpy(db.get(), b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    dim3 block(kTile, kTile);
    dim3 grid((n + kTile - 1) / kTile, (m + kTile - 1) / kTile);
    sgemm_tiled<<<grid, block>>>(m, n, k, da.get(), db.get(), dc.get());
    ok(cudaGetLastError(), "sgemm launch");
    Timer timer;
    timer.start();
    for (int rep = 0; rep < kGemmReps; ++rep) sgemm_tiled<<<grid, block>>>(m, n, k, da.get(), db.get(), dc.get());
    double seconds = timer.stop_seconds();
    ok(cudaGetLastError(), "sgemm launch");
    std::vector<float> got(static_cast<std::size_t>(m) * n);
    ok(cudaMemcpy(got.data(), dc.get(), got.size() * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
    std::vector<float> want = gemm_reference(m, n, k, a, b);
    Comparison cmp = compare(got.data(), want.data(), got.size(), 0.0, gemm_tolerance(k));
    double gflops = 2.0 * m * n * k * kGemmReps / seconds / 1e9;
    r.values = {{"max_abs_err", cmp.max_abs_err}, {"tolerance", gemm_tolerance(k)}, {"gflops", gflops}};
    r.status = cmp.ok() ? Status::kPass : Status::kFail;
    r.detail = fmt::format("{}x{}x{} SGEMM vs CPU reference: max abs err {:.2e} (tol {:.1e}){}; own tiled kernel "
                           "{:.0f} GFLOP/s",
                           m, n, k, cmp.max_abs_err, gemm_tolerance(k),
                           cmp.ok() ? "" : fmt::format(", {} of {} wrong, worst at [{}, {}]", cmp.mismatches,
                                                       cmp.count, cmp.worst_index / n, cmp.worst_index % n),
                           gflops);
  });
}

CheckResult memory(int device, double fraction, std::optional<std::uint64_t>& free_bytes) {
  return timed("memory", device, [&](CheckResult& r) {
    std::size_t free = 0, total = 0;
    ok(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    free_bytes = free;
    constexpr std::size_t kGranule = 2 << 20;  // round down to 2 MiB, the allocation granularity
    std::size_t bytes = static_cast<std::size_t>(static_cast<double>(free) * fraction) / kGranule * kGranule;
    std::uint64_t words = bytes / sizeof(std::uint32_t);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the error so later checks start clean
      r.status = Status::kFail;
      r.detail = fmt::format("cudaMalloc of {:.2f} GiB ({:.0f}% of {:.2f} GiB free) failed: {}", bytes / 1073741824.0,
                             fraction * 100, free / 1073741824.0, cudaGetErrorString(e));
      return;
    }
    DeviceBuffer<std::uint32_t> buf(static_cast<std::uint32_t*>(p));
    auto counter = device_alloc<unsigned long long>(1);
    ok(cudaMemset(counter.get(), 0, sizeof(unsigned long long)), "cudaMemset");
    int grid = grid_for(words, sm_count(device));
    fill_pattern<<<grid, kThreads>>>(buf.get(), words, kSalt ^ 0xffffffffu);
    ok(cudaGetLastError(), "fill launch");
    count_mismatches<<<grid, kThreads>>>(buf.get(), words, kSalt ^ 0xffffffffu, counter.get());
    ok(cudaGetLastError(), "check launch");
    unsigned long long bad = 0;
    ok(cudaMemcpy(&bad, counter.get(), sizeof bad, cudaMemcpyDeviceToHost), "cudaMemcpy");
    r.values = {{"bytes", static_cast<double>(bytes)}, {"free_bytes", static_cast<double>(free)},
                {"mismatched_words", static_cast<double>(bad)}};
    r.status = bad == 0 ? Status::kPass : Status::kFail;
    r.detail = fmt::format("allocated {:.2f} GiB ({:.0f}% of {:.2f} GiB free), wrote and read back every word{}",
                           bytes / 1073741824.0, fraction * 100, free / 1073741824.0,
                           bad ? fmt::format(": {} words wrong", bad) : "");
  });
}

CheckResult bandwidth(int device, std::size_t bytes) {
  return timed("bandwidth", device, [&](CheckResult& r) {
    std::size_t words = bytes / sizeof(std::uint32_t);
    auto host_in = pinned_alloc<std::uint32_t>(words);
    auto host_out = pinned_alloc<std::uint32_t>(words);
    for (std::size_t i = 0; i < words; ++i) host_in.get()[i] = pattern(i, kSalt);
    auto dev_a = device_alloc<std::uint32_t>(words);
    auto dev_b = device_alloc<std::uint32_t>(words);
    Timer timer;
    auto rate = [&](void* dst, const void* src, cudaMemcpyKind kind) {
      ok(cudaMemcpyAsync(dst, src, bytes, kind), "cudaMemcpyAsync");  // warm-up
      timer.start();
      for (int rep = 0; rep < kBandwidthReps; ++rep) ok(cudaMemcpyAsync(dst, src, bytes, kind), "cudaMemcpyAsync");
      return static_cast<double>(bytes) * kBandwidthReps / timer.stop_seconds() / 1e9;
    };
    double h2d = rate(dev_a.get(), host_in.get(), cudaMemcpyHostToDevice);
    double d2d = rate(dev_b.get(), dev_a.get(), cudaMemcpyDeviceToDevice);
    double d2h = rate(host_out.get(), dev_b.get(), cudaMemcpyDeviceToHost);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < words; ++i) bad += host_out.get()[i] != host_in.get()[i];
    r.values = {{"h2d_gbps", h2d}, {"d2h_gbps", d2h}, {"d2d_gbps", d2d}};
    r.status = bad == 0 ? Status::kPass : Status::kFail;
    r.detail = fmt::format("{} MiB pinned: host->device {:.1f} GB/s, device->host {:.1f} GB/s, device->device copy "
                           "{:.1f} GB/s{}",
                           bytes >> 20, h2d, d2h, d2d, bad ? fmt::format(": {} words differ after the round trip", bad) : "");
  });
}

}  // namespace hf::gpu::cuda
