// Gradients summed over the ranks while backward still runs (the idea of c10d's DDP Reducer, on
// the Communicator): parameters are packed into buckets in reverse order, the order backward
// finishes them, and a bucket's all-reduce starts as soon as its last gradient is final, so the
// transfer of the top layers overlaps the backward of the lower ones.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <exception>
#include <functional>
#include <utility>
#include <vector>

#include "dist/communicator.h"

namespace hf::dist {

class GradientReducer {
 public:
  // Hooks every parameter; `comm` must outlive this object. A world of one does nothing.
  GradientReducer(Communicator& comm, std::vector<torch::Tensor> params);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward is the last of this optimizer step on this rank: its gradient hooks start
  // the buckets (gradients of earlier micro-batches are already in .grad and are included).
  void arm();
  // After that backward, or instead of it on a rank without examples in this step: starts the
  // buckets the hooks did not, waits for all, and leaves in each .grad the sum over the ranks. A
  // parameter that no rank has a gradient for keeps none. Every rank calls it at every step.
  void finish();
  // Buckets whose all-reduce started inside the armed backward in this step (the overlap).
  std::size_t started_in_backward() const { return started_in_backward_; }

 private:
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_
    torch::Tensor flat;
    std::size_t missing = 0;  // gradients not yet copied in during this step
    std::function<void()> wait;
  };
  void on_gradient(std::size_t param, const torch::Tensor& grad);
  void start_ready();
  torch::Tensor slot(std::size_t param);

  Communicator& comm_;
  std::vector<torch::Tensor> params_;
  std::vector<Bucket> buckets_;
  std::vector<std::size_t> bucket_of_;  // parameter -> bucket
  std::vector<std::int64_t> offset_of_;  // parameter -> its offset in that bucket's flat
  std::vector<bool> filled_;            // parameter's slot written during this step
  std::vector<std::pair<std::size_t, unsigned>> hooks_;  // (parameter, hook id)
  std::size_t next_ = 0;  // buckets start in index order on every rank (collectives must match)
  std::size_t started_in_backward_ = 0;
  bool armed_ = false;
  std::exception_ptr failed_;  // from a hook, which runs inside autograd: rethrown by finish()
};

}  // namespace hf::dist
