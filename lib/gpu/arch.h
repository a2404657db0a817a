// Which code image a GPU would run from a fatbin: parses CMake's CUDA_ARCHITECTURES list and
// torch's arch list, and applies CUDA's compatibility rules (a cubin for sm_XY runs on X.Y and
// later minors of the same major; PTX for compute_XY is JIT-compiled for any X.Y or newer).
// Internal to lib/gpu.
#pragma once

#include <string>
#include <vector>

namespace hf::gpu {

struct ArchList {
  std::vector<int> cubins;        // 80 = sm_80
  std::vector<int> exact_cubins;  // arch-specific "90a": runs on exactly that device
  std::vector<int> ptx;           // 90 = compute_90
};

// "80-real;90-real;90-virtual" (CMAKE_CUDA_ARCHITECTURES, also with ',' or spaces); a bare "80"
// means both cubin and PTX.
// Throws hf::Error(kInternal) on an entry it does not understand.
ArchList parse_cmake_archs(const std::string& list);
// "sm_80 sm_90 compute_90" (torch.cuda.get_arch_list, space or ';' separated).
ArchList parse_torch_archs(const std::string& list);

// The image the driver would use on a device of compute capability `cc` (90 for 9.0):
// "cubin sm_90", "PTX compute_90 (JIT)", or "" when nothing in `list` can run there.
std::string pick_image(const ArchList& list, int cc);

}  // namespace hf::gpu
