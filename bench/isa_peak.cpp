// One core's peak arithmetic rate for fp32 and for int8 as AVX2 CPUs without VNNI compute it, for
// predict_bench's int8 ceiling. Prints {"fp32_gflops": F, "int8_gops": Q} (a multiply-add counts 2).
//   fp32: vfmadd231ps, 8 multiply-adds per instruction, 10 independent accumulators so the FMA
//         latency never stalls the pipes.
//   int8: the exact u8 x s8 -> s32 step every AVX2 int8 GEMM is built on (fbgemm's, ONNX Runtime's
//         MLAS): vpmaddubsw (32 products, added pairwise to s16), vpmaddwd by ones (to s32), vpaddd
//         into an accumulator; 32 multiply-adds per step, 5 independent steps per iteration.
// Written in assembly so the compiler cannot hoist or merge the loop-invariant arithmetic.
// Built and run by bench/predict_bench.py (x86-64 only): c++ -O2 bench/isa_peak.cpp.
#include <algorithm>
#include <chrono>
#include <cstdio>

namespace {

constexpr long kIterations = 50'000'000;
constexpr int kRuns = 5;  // the fastest counts: the others met interrupts or another process

double seconds_fp32(long n) {
  const auto start = std::chrono::steady_clock::now();
  asm volatile(
      "vxorps %%ymm14, %%ymm14, %%ymm14\n\t"
      "vxorps %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm14", "ymm15", "cc");
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double seconds_int8(long n) {
  const auto start = std::chrono::steady_clock::now();
  asm volatile(
      "vpxor %%ymm13, %%ymm13, %%ymm13\n\t"
      "vpxor %%ymm14, %%ymm14, %%ymm14\n\t"
      "vpxor %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm5\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm6\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm7\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm8\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm9\n\t"
      "vpmaddwd %%ymm13, %%ymm5, %%ymm5\n\t"
      "vpmaddwd %%ymm13, %%ymm6, %%ymm6\n\t"
      "vpmaddwd %%ymm13, %%ymm7, %%ymm7\n\t"
      "vpmaddwd %%ymm13, %%ymm8, %%ymm8\n\t"
      "vpmaddwd %%ymm13, %%ymm9, %%ymm9\n\t"
      "vpaddd %%ymm5, %%ymm0, %%ymm0\n\t"
      "vpaddd %%ymm6, %%ymm1, %%ymm1\n\t"
      "vpaddd %%ymm7, %%ymm2, %%ymm2\n\t"
      "vpaddd %%ymm8, %%ymm3, %%ymm3\n\t"
      "vpaddd %%ymm9, %%ymm4, %%ymm4\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm13", "ymm14", "ymm15",
        "cc");
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  double fp32 = 1e30, int8 = 1e30;
  for (int r = 0; r < kRuns; ++r) {  // interleaved, so a slow spell hits both
    fp32 = std::min(fp32, seconds_fp32(kIterations));
    int8 = std::min(int8, seconds_int8(kIterations));
  }
  const double fp32_ops = 2.0 * 8 * 10 * kIterations, int8_ops = 2.0 * 32 * 5 * kIterations;
  std::printf("{\"fp32_gflops\": %.1f, \"int8_gops\": %.1f}\n", fp32_ops / fp32 / 1e9, int8_ops / int8 / 1e9);
  return 0;
}
