// CPU reference GEMM, deterministic fill and tolerance comparison (see reference.h).
#include "gpu/reference.h"

#include <cmath>

namespace hf::gpu {

std::vector<float> gemm_reference(int m, int n, int k, const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<double> acc(static_cast<std::size_t>(m) * n, 0.0);
  // i-p-j order: the inner loop walks rows of B and C contiguously.
  for (int i = 0; i < m; ++i) {
    double* c_row = &acc[static_cast<std::size_t>(i) * n];
    for (int p = 0; p < k; ++p) {
      double a_ip = a[static_cast<std::size_t>(i) * k + p];
      const float* b_row = &b[static_cast<std::size_t>(p) * n];
      for (int j = 0; j < n; ++j) c_row[j] += a_ip * b_row[j];
    }
  }
  return std::vector<float>(acc.begin(), acc.end());
}

void fill_uniform(std::vector<float>& v, std::uint64_t seed) {
  std::uint64_t state = seed;
  for (float& x : v) {
    // Knuth's MMIX LCG; the top 24 bits give a float in [0, 1) exactly.
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<float>(state >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
  }
}

double gemm_tolerance(int k) { return 2e-6 * k; }

Comparison compare(const float* got, const float* want, std::size_t n, double rtol, double atol) {
  Comparison c;
  c.count = n;
  bool saw_non_finite = false;
  for (std::size_t i = 0; i < n; ++i) {
    double g = got[i];
    double w = want[i];
    if (!std::isfinite(g)) {
      if (!saw_non_finite) c.worst_index = i;
      saw_non_finite = true;
      c.max_abs_err = INFINITY;
      ++c.mismatches;
      continue;
    }
    double err = std::fabs(g - w);
    if (err > atol + rtol * std::fabs(w)) ++c.mismatches;
    if (!saw_non_finite && err > c.max_abs_err) {
      c.max_abs_err = err;
      c.worst_index = i;
    }
    if (w != 0 && err / std::fabs(w) > c.max_rel_err) c.max_rel_err = err / std::fabs(w);
  }
  return c;
}

}  // namespace hf::gpu
