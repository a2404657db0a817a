// gpu-check: is this machine's GPU usable by hfkit? Driver, devices, this binary's kernels, GEMM,
// memory, bandwidth, NCCL and libtorch's CUDA — in seconds; exit 69 at once when there is no GPU.
#include "cli/cli.h"
#include "gpu/gpu.h"

#include <iostream>

int main(int argc, char** argv) {
  hf::gpu::CheckOptions o;
  hf::cli::Tool tool("gpu-check",
                     "Check that the GPUs here can run hfkit: driver and CUDA versions, every device, a\n"
                     "kernel of this binary launching, a GEMM matching a CPU reference, allocating free\n"
                     "memory, copy bandwidth, NCCL, and libtorch seeing CUDA. Report on stdout.",
                     "  gpu-check                                   # report; no GPU is not an error\n"
                     "  gpu-check --require-gpu --min-compute-capability 9.0 --expect-devices 8\n"
                     "  gpu-check --quick --json | jq .passed\n"
                     "  docker run --rm --gpus all IMAGE gpu-check --require-gpu");
  auto& app = tool.app();
  app.add_flag("--json", o.json, "Print one JSON object (schema in tools/gpu-check/README.md)");
  app.add_flag("--require-gpu", o.require_gpu, "No CUDA driver or device is an error (exit 69)")
      ->envname("HFKIT_REQUIRE_GPU");
  app.add_option("--min-compute-capability", o.min_compute_capability,
                 "Fail unless every checked device has at least this compute capability (e.g. 9.0); 0 = any")
      ->check(CLI::Range(0.0, hf::gpu::kComputeCapabilityMax));
  app.add_option("--expect-devices", o.expect_devices, "Fail unless the driver sees exactly N devices; -1 = any")
      ->check(CLI::Range(-1, 1024));
  app.add_flag("--quick", o.quick, "Skip the bandwidth check and use a smaller GEMM");
  app.add_option("--device", o.device, "Check only device N (CUDA order); -1 = all")->check(CLI::Range(-1, 1023));
  app.add_option("--memory-fraction", o.memory_fraction, "Share of free device memory the allocation check takes")
      ->check(CLI::Range(hf::gpu::kMemoryFractionMin, hf::gpu::kMemoryFractionMax));
  app.add_flag("--skip-torch", o.skip_torch, "Skip the libtorch checks (they load libtorch, ~0.5 s)");
  app.add_option("--driver-timeout", o.driver_timeout_s,
                 "Seconds cuInit (and nvmlInit) may take; a driver that takes longer hangs: check fails")
      ->check(CLI::Range(0.0, hf::gpu::kDriverTimeoutMaxS));
  hf::cli::exit_now(tool.run(argc, argv, [&] {
    return hf::gpu::run_check(o, std::cout);
  }));
}
