// How lib/dist packs tensors for its collectives (shared by the communicator and the gradient
// reducer; not part of the public header).
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hf::dist {

// c10d's default DDP bucket (bucket_cap_mb = 25): big enough to amortise a collective's latency,
// small enough that the packed copy stays cheap.
inline constexpr std::int64_t kBucketBytes = 25 << 20;

// Tensors grouped into flat buckets of one dtype and device, at most kBucketBytes each (a larger
// tensor is a bucket of its own), in the callers' order.
std::vector<std::vector<std::size_t>> buckets(const std::vector<torch::Tensor>& tensors);

}  // namespace hf::dist
