#include "dist/gradients.h"

#include <algorithm>

#include "dist/buckets.h"

namespace hf::dist {

GradientReducer::GradientReducer(Communicator& comm, std::vector<torch::Tensor> params)
    : comm_(comm),
      params_(std::move(params)),
      bucket_of_(params_.size()),
      offset_of_(params_.size()),
      filled_(params_.size()) {
  if (comm_.world_size() == 1) return;
  // Reverse order: backward computes the last layers' gradients first.
  std::vector<torch::Tensor> reversed(params_.rbegin(), params_.rend());
  for (const std::vector<std::size_t>& members : buckets(reversed)) {
    Bucket b;
    std::int64_t size = 0;
    for (std::size_t r : members) {
      const std::size_t i = params_.size() - 1 - r;
      b.params.push_back(i);
      offset_of_[i] = size;
      size += params_[i].numel();
      bucket_of_[i] = buckets_.size();
    }
    b.flat = torch::empty({size}, params_[b.params.front()].options().requires_grad(false));
    buckets_.push_back(std::move(b));
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].requires_grad()) continue;
    hooks_.emplace_back(i, params_[i].register_hook([this, i](const torch::Tensor& grad) { on_gradient(i, grad); }));
  }
}

GradientReducer::~GradientReducer() {
  for (const auto& [param, hook] : hooks_) params_[param].remove_hook(hook);
}

torch::Tensor GradientReducer::slot(std::size_t param) {
  return buckets_[bucket_of_[param]].flat.narrow(0, offset_of_[param], params_[param].numel()).view_as(params_[param]);
}

void GradientReducer::arm() {
  if (comm_.world_size() == 1) return;
  armed_ = true;
  next_ = 0;
  started_in_backward_ = 0;
  failed_ = nullptr;
  std::fill(filled_.begin(), filled_.end(), false);
  for (Bucket& b : buckets_) {
    b.missing = b.params.size();
    b.wait = nullptr;
  }
}

// Runs inside backward, before autograd adds `grad` to .grad (which holds the earlier
// micro-batches' sum): the slot gets the step's whole gradient.
void GradientReducer::on_gradient(std::size_t param, const torch::Tensor& grad) {
  if (!armed_ || filled_[param] || failed_) return;
  try {
    torch::NoGradGuard no_grad;
    const torch::Tensor& earlier = params_[param].grad();
    torch::Tensor into = slot(param);
    if (earlier.defined())
      torch::add_out(into, earlier, grad);
    else
      into.copy_(grad);
    filled_[param] = true;
    --buckets_[bucket_of_[param]].missing;
    const std::size_t before = next_;
    start_ready();
    started_in_backward_ += next_ - before;
  } catch (...) {
    failed_ = std::current_exception();  // an exception thrown through autograd loses its type
  }
}

void GradientReducer::start_ready() {
  while (next_ < buckets_.size() && buckets_[next_].missing == 0) {
    buckets_[next_].wait = comm_.allreduce_sum_start(buckets_[next_].flat);
    ++next_;
  }
}

void GradientReducer::finish() {
  if (comm_.world_size() == 1) return;
  if (!armed_) arm();  // a rank that ran no backward in this step
  armed_ = false;
  if (failed_) std::rethrow_exception(failed_);
  torch::NoGradGuard no_grad;
  // Gradients no hook delivered: from earlier micro-batches only, or none (zeros).
  std::vector<float> had(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& g = params_[i].grad();
    had[i] = g.defined() ? 1.0F : 0.0F;
    if (filled_[i]) continue;
    if (g.defined())
      slot(i).copy_(g);
    else
      slot(i).zero_();
    filled_[i] = true;
    --buckets_[bucket_of_[i]].missing;
  }
  start_ready();
  for (Bucket& b : buckets_) b.wait();
  // A parameter without a gradient on every rank (unused, or no examples in the last batch) keeps
  // none: count the ranks that had one.
  std::vector<torch::Tensor> counts = {torch::tensor(had, torch::kFloat).to(params_.front().device())};
  comm_.allreduce_sum(counts);
  const torch::Tensor any = counts[0].gt(0).to(torch::kCPU);
  const auto* any_p = any.data_ptr<bool>();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor p = params_[i];
    if (!any_p[i])
      p.mutable_grad() = torch::Tensor();
    else if (p.grad().defined())
      p.mutable_grad().copy_(slot(i));
    else
      p.mutable_grad() = slot(i).clone();
  }
}

}  // namespace hf::dist
