// CPU reference for the GPU checks: a row-major GEMM accumulated in double, deterministic input
// fill, and the element-wise comparison whose verdict gpu-check reports. Internal to lib/gpu.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hf::gpu {

// C[m, n] = A[m, k] · B[k, n], all row-major. Accumulates in double and rounds once.
// Requires: a.size() == m * k, b.size() == k * n.
std::vector<float> gemm_reference(int m, int n, int k, const std::vector<float>& a, const std::vector<float>& b);

// Fills `v` with values uniform in [-1, 1) from a 64-bit LCG seeded with `seed` (same values on
// every platform, so a failure can be reproduced).
void fill_uniform(std::vector<float>& v, std::uint64_t seed);

// Absolute tolerance for an FP32 GEMM of inputs in [-1, 1] with inner dimension k: round-off grows
// about like sqrt(k) * eps * |C| with |C| ~ sqrt(k / 9); 2e-6 * k leaves a wide margin for
// FMA-order differences while any wrong product or index is O(0.1) or larger.
double gemm_tolerance(int k);

struct Comparison {
  std::size_t count = 0;        // elements compared
  std::size_t mismatches = 0;   // elements outside tolerance (NaN/inf included)
  std::size_t worst_index = 0;  // index of the largest absolute error (first mismatch if non-finite)
  double max_abs_err = 0;
  double max_rel_err = 0;       // |got - want| / |want| where want != 0
  bool ok() const { return mismatches == 0; }
};

// Element i matches when |got[i] - want[i]| <= atol + rtol * |want[i]| and got[i] is finite.
Comparison compare(const float* got, const float* want, std::size_t n, double rtol, double atol);

}  // namespace hf::gpu
