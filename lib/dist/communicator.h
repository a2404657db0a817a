// The collectives a data-parallel loop needs, over PyTorch's c10d: TCPStore for the rendezvous,
// ProcessGroupGloo on CPU, ProcessGroupNCCL on CUDA (where this build has it). A world of one is
// the same object doing nothing, so callers read the same for 1 or N ranks.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/dist.h"

namespace hf::dist {

struct CommOptions {
  std::string backend;  // "" (auto: nccl on CUDA, gloo on CPU), "gloo" or "nccl" (HF's ddp_backend)
  std::chrono::seconds timeout{1800};  // HF's ddp_timeout: rendezvous, each collective, a lost peer
};

class Communicator {
 public:
  // One process: every collective returns its input.
  Communicator();
  // Joins the job `where` describes (rank 0 hosts the store), on `device`. Throws Error(kUsage) for
  // a backend this build or device cannot run, Error(kUnavailable) when the rendezvous fails
  // within the timeout.
  Communicator(const Placement& where, const torch::Device& device, const CommOptions& options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return place_.rank; }
  int world_size() const { return place_.world_size; }
  bool is_main() const { return place_.rank == 0; }
  const Placement& placement() const { return place_; }
  const std::string& backend() const { return backend_; }

  // In place, element-wise sum over the ranks. The tensors are packed into flat buckets of one
  // dtype and device (c10d's default bucket size), so one call costs a few collectives.
  void allreduce_sum(std::vector<torch::Tensor>& tensors);
  // Starts the in-place sum of one tensor over the ranks and returns at once; calling the returned
  // function waits for it (errors as allreduce_sum's). Until then the tensor must not be touched.
  // Every rank must start its sums in the same order.
  std::function<void()> allreduce_sum_start(torch::Tensor flat);
  // In place: every rank ends with `root`'s values (packed the same way).
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  // `text` of `root` on every rank.
  std::string broadcast(const std::string& text, int root = 0);
  // Each rank's `text`, indexed by rank.
  std::vector<std::string> allgather(const std::string& text);

  // Errors of the collectives: a peer gone (killed, out of memory) or silent past the timeout
  // becomes Error(kUnavailable) naming the lost rank(s), found from the store's heartbeats.

 private:
  struct Impl;
  template <class F>
  void guarded(const char* what, F&& f);
  [[noreturn]] void lost(const char* what, const std::string& cause);

  Placement place_;
  std::string backend_ = "none";
  std::unique_ptr<Impl> impl_;
};

// Joins the job `where` describes, logging the placement and the process group.
std::unique_ptr<Communicator> open_communicator(const Placement& where, const torch::Device& device,
                                                const CommOptions& options);

}  // namespace hf::dist
