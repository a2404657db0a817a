// gpu (host side): the CPU reference GEMM and the comparison gpu-check's GEMM verdict rests on,
// fatbin image selection, the report, and the dlopen driver probe against the toolkit's stub.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "gpu/arch.h"
#include "gpu/driver.h"
#include "gpu/reference.h"
#include "gpu/report.h"

using hf::gpu::compare;
using hf::gpu::gemm_reference;

TEST_CASE("gpu: reference GEMM against hand-computed products") {
  struct Case {
    int m, n, k;
    std::vector<float> a, b, want;
  };
  const Case cases[] = {
      {2, 2, 3, {1, 2, 3, 4, 5, 6}, {7, 8, 9, 10, 11, 12}, {58, 64, 139, 154}},
      {1, 1, 1, {3}, {-2}, {-6}},
      {2, 3, 1, {1, 2}, {1, 2, 3}, {1, 2, 3, 2, 4, 6}},  // outer product
      {1, 1, 4, {0.5f, 0.25f, -1, 2}, {2, 4, 3, 0.5f}, {0 + 1 + 1 - 3 + 1}},
  };
  for (const auto& c : cases) {
    std::vector<float> got = gemm_reference(c.m, c.n, c.k, c.a, c.b);
    REQUIRE(got.size() == c.want.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == c.want[i]);
  }
}

TEST_CASE("gpu: fill_uniform is deterministic and stays within -1 to 1") {
  std::vector<float> a(10000), b(10000), c(10000);
  hf::gpu::fill_uniform(a, 1);
  hf::gpu::fill_uniform(b, 1);
  hf::gpu::fill_uniform(c, 2);
  CHECK(a == b);
  CHECK(a != c);
  double sum = 0;
  int out_of_range = 0;
  for (float x : a) {
    out_of_range += x < -1.0f || x >= 1.0f;
    sum += x;
  }
  CHECK(out_of_range == 0);
  CHECK(std::fabs(sum / a.size()) < 0.05);
}

TEST_CASE("gpu: compare counts mismatches and NaN and finds the worst element") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::vector<float> got, want;
    double rtol, atol;
    std::size_t mismatches, worst;
  };
  const Case cases[] = {
      {{1, 2, 3}, {1, 2, 3}, 0, 0, 0, 0},
      {{1, 2.0005f, 3}, {1, 2, 3}, 0, 1e-3, 0, 1},
      {{1, 2.01f, 3}, {1, 2, 3}, 0, 1e-3, 1, 1},
      {{1, 2.01f, 3.5f}, {1, 2, 3}, 0, 1e-3, 2, 2},
      {{100.5f}, {100}, 1e-2, 0, 0, 0},  // within 1 % of |want|
      {{1, nan, 9}, {1, 2, 3}, 0, 1e-3, 2, 1},
      {{1, 2, INFINITY}, {1, 2, 3}, 0, 1e-3, 1, 2},
  };
  for (const auto& c : cases) {
    auto r = compare(c.got.data(), c.want.data(), c.got.size(), c.rtol, c.atol);
    CHECK(r.count == c.got.size());
    CHECK(r.mismatches == c.mismatches);
    CHECK(r.ok() == (c.mismatches == 0));
    CHECK(r.worst_index == c.worst);
  }
}

TEST_CASE("gpu: the GEMM tolerance passes float round-off and catches a wrong GEMM") {
  // The shape gpu-check uses: k is not a multiple of the 16-wide tile.
  const int m = 64, n = 48, k = 520;
  std::vector<float> a(m * k), b(k * n), bt(k * n);
  hf::gpu::fill_uniform(a, 1);
  hf::gpu::fill_uniform(b, 2);
  std::vector<float> want = gemm_reference(m, n, k, a, b);
  // What a correct GPU kernel computes: FP32 sums, here in the opposite order from the reference.
  std::vector<float> fp32(m * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float acc = 0;
      for (int p = k - 1; p >= 0; --p) acc = std::fma(a[i * k + p], b[p * n + j], acc);
      fp32[i * n + j] = acc;
    }
  auto good = compare(fp32.data(), want.data(), want.size(), 0, hf::gpu::gemm_tolerance(k));
  CHECK(good.ok());
  CHECK(good.max_abs_err > 0);  // the orders really differ
  // Typical kernel bugs: the last partial tile dropped, one element off.
  std::vector<float> short_k(m * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int p = 0; p < k / 16 * 16; ++p) acc += double(a[i * k + p]) * b[p * n + j];
      short_k[i * n + j] = float(acc);
    }
  CHECK_FALSE(compare(short_k.data(), want.data(), want.size(), 0, hf::gpu::gemm_tolerance(k)).ok());
  std::vector<float> one_off = want;
  one_off[17] += 0.05f;
  auto bad = compare(one_off.data(), want.data(), want.size(), 0, hf::gpu::gemm_tolerance(k));
  CHECK(bad.mismatches == 1);
  CHECK(bad.worst_index == 17);
}

TEST_CASE("gpu: fatbin image selection follows the CUDA compatibility rules") {
  auto ours = hf::gpu::parse_cmake_archs("80-real;90-real;90-virtual");
  CHECK(ours.cubins == std::vector<int>{80, 90});
  CHECK(ours.ptx == std::vector<int>{90});
  auto torch = hf::gpu::parse_torch_archs("sm_75 sm_80 sm_86 sm_90 sm_100 sm_120");
  struct Case {
    const hf::gpu::ArchList* list;
    int cc;
    const char* want;
  };
  const Case cases[] = {
      {&ours, 80, "cubin sm_80"},
      {&ours, 86, "cubin sm_80"},  // same major, newer minor
      {&ours, 89, "cubin sm_80"},
      {&ours, 90, "cubin sm_90"},
      {&ours, 100, "PTX compute_90 (JIT)"},  // Blackwell: no sm_100 cubin, PTX is JIT-compiled
      {&ours, 120, "PTX compute_90 (JIT)"},
      {&ours, 75, ""},  // Turing: nothing fits
      {&torch, 103, "cubin sm_100"},
      {&torch, 121, "cubin sm_120"},
      {&torch, 70, ""},
  };
  for (const auto& c : cases) CHECK(hf::gpu::pick_image(*c.list, c.cc) == c.want);

  auto bare = hf::gpu::parse_cmake_archs("80;90");
  CHECK(bare.cubins == std::vector<int>{80, 90});
  CHECK(bare.ptx == std::vector<int>{80, 90});
  auto specific = hf::gpu::parse_cmake_archs("90a-real");
  CHECK(hf::gpu::pick_image(specific, 90) == "cubin sm_90a");
  CHECK(hf::gpu::pick_image(specific, 100) == "");
  for (const char* bad : {"sm80", "80-fake", "x", "80--real"})
    CHECK_THROWS_AS(hf::gpu::parse_cmake_archs(bad), hf::Error);
  CHECK_THROWS_AS(hf::gpu::parse_torch_archs("gfx90a"), hf::Error);
}

TEST_CASE("gpu: report JSON carries every documented key and the verdict") {
  hf::gpu::Report r;
  r.hfkit_version = "0.1.0";
  r.reason = "no CUDA driver: x";
  hf::gpu::DeviceInfo d;
  d.name = "Test GPU";
  d.cc_major = 9;
  d.memory_total = 1ull << 36;
  r.devices.push_back(d);
  r.checks.push_back({"gemm", 0, hf::gpu::Status::kPass, 0.5, "ok", {{"gflops", 1.5}}});
  auto j = nlohmann::json::parse(hf::gpu::to_json(r));
  for (const char* key : {"schema_version", "tool", "hfkit_version", "build", "driver", "nvml", "gpu_available",
                          "reason", "devices", "checks", "passed"})
    CHECK(j.contains(key));
  CHECK(j["passed"] == true);
  CHECK(j["devices"][0]["compute_capability"] == "9.0");
  CHECK(j["devices"][0]["ecc"].is_null());
  CHECK(j["checks"][0]["values"]["gflops"] == 1.5);
  CHECK(hf::gpu::to_text(r).find("result: PASS") != std::string::npos);
  r.checks.push_back({"memory", 0, hf::gpu::Status::kFail, 0.1, "cudaMalloc failed", {}});
  CHECK_FALSE(r.passed());
  CHECK(nlohmann::json::parse(hf::gpu::to_json(r))["passed"] == false);
  CHECK(hf::gpu::to_text(r).find("FAIL  dev0 memory") != std::string::npos);
}

TEST_CASE("gpu: driver probe without a driver and with the CUDA toolkit stub") {
  hf::gpu::CudaDriver none("libcuda-does-not-exist.so.1");
  CHECK_FALSE(none.loaded());
  CHECK_FALSE(none.ok());
  CHECK(none.reason().rfind("no CUDA driver: ", 0) == 0);

  const char* stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (!std::filesystem::exists(stub)) {
    MESSAGE("no CUDA toolkit stub at " << stub << ": stub case not run");
    return;
  }
  hf::gpu::CudaDriver stubbed(stub);
  CHECK(stubbed.loaded());
  CHECK_FALSE(stubbed.ok());
  CHECK(stubbed.reason().find("stub") != std::string::npos);
  CHECK(stubbed.reason().find("CUDA_ERROR_STUB_LIBRARY (34)") != std::string::npos);
  CHECK(stubbed.path().find("libcuda.so") != std::string::npos);
}

TEST_CASE("gpu: DynLib resolves symbols and reports load errors") {
  hf::gpu::DynLib libc("libc.so.6");
  REQUIRE(libc.ok());
  CHECK(libc.symbol("strlen") != nullptr);
  CHECK(libc.symbol("no_such_symbol_hfkit") == nullptr);
  CHECK(libc.path().find("libc.so.6") != std::string::npos);
  hf::gpu::DynLib missing("libhfkit-missing.so");
  CHECK_FALSE(missing.ok());
  CHECK(missing.error().find("libhfkit-missing.so") != std::string::npos);
  CHECK(hf::gpu::cuda_version_string(13000) == "13.0");
  CHECK(hf::gpu::cuda_version_string(12080) == "12.8");
}
