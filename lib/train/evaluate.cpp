// The forward pass + loss (with bf16 autocast on CUDA) and evaluation on a split: HF's eval_loss
// plus lib/metrics' classification report, keys prefixed "eval_" as HF's Trainer.evaluate names them.

#include <algorithm>
#include <chrono>
#include <numeric>

#include "metrics/metrics.h"
#include "train/internal.h"

namespace hf::train {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

torch::Tensor forward_loss(model::SequenceClassifier& model, const Batch& batch, const Runtime& rt,
                           model::ProblemType problem_type, torch::Tensor* logits_out) {
  const bool async = rt.device.is_cuda();  // batches are pinned on CUDA
  const torch::Tensor ids = batch.input_ids.to(rt.device, async);
  const torch::Tensor mask = batch.attention_mask.to(rt.device, async);
  const torch::Tensor types = batch.token_type_ids.to(rt.device, async);
  const torch::Tensor labels = batch.labels.to(rt.device, async);
  torch::Tensor logits;
  {
    model::AutocastGuard autocast(rt.autocast_bf16);
    logits = model.forward(ids, mask, types);  // [B, L]
  }
  logits = logits.to(torch::kFloat);  // the loss in fp32, as autocast runs it
  if (logits_out) *logits_out = logits;
  return model::classification_loss(problem_type, logits, labels);
}

nlohmann::ordered_json evaluate(model::SequenceClassifier& model, const data::Dataset& dataset,
                                std::int64_t batch_size, const Runtime& rt, const std::vector<std::int64_t>& label_map,
                                model::ProblemType problem_type, dist::Communicator& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t n = dataset.size();
  // Longest first: the order does not change any metric, and similar lengths pad least.
  std::vector<std::int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return dataset.input_ids(a).size() > dataset.input_ids(b).size();
  });
  // Batch b is rank (b mod world)'s. Each rank fills only its batches' slots of the per-batch
  // losses and per-example rows, the sum over ranks fills them all, and the metrics below are
  // computed from the same numbers in the same order as by one process: equal, not just close.
  const std::int64_t num_batches = (static_cast<std::int64_t>(n) + batch_size - 1) / batch_size;
  const std::int64_t world = comm.world_size(), rank = comm.rank();
  std::vector<std::int64_t> mine;
  for (std::int64_t b = rank; b < num_batches; b += world)
    mine.insert(mine.end(), order.begin() + b * batch_size,
                order.begin() + std::min<std::int64_t>((b + 1) * batch_size, static_cast<std::int64_t>(n)));
  const std::vector<std::string>& names = model.config().id2label;
  const std::int64_t num_labels = static_cast<std::int64_t>(names.size());
  const bool single = problem_type == model::ProblemType::kSingleLabelClassification;
  const bool multi = problem_type == model::ProblemType::kMultiLabelClassification;
  // Per example (by position in `order`): single label -> truth, prediction, p(truth); multi
  // label -> the truth's 0/1 row, then the prediction's.
  const std::int64_t width = single ? 3 : multi ? 2 * num_labels : 0;
  torch::Tensor losses = torch::zeros({num_batches}, torch::kDouble);
  torch::Tensor rows = torch::zeros({static_cast<std::int64_t>(n), width}, torch::kDouble);

  model.eval();
  {
    torch::NoGradGuard no_grad;
    BatchLoader loader(dataset, mine, batch_size, 0, 0, model.config().pad_token_id, label_map, rt.device.is_cuda());
    for (std::int64_t j = 0; j < loader.num_batches(); ++j) {
      const std::int64_t b = rank + j * world;
      const Batch batch = loader.next();
      torch::Tensor logits;
      const torch::Tensor loss = forward_loss(model, batch, rt, problem_type, &logits);
      losses[b] = loss.item<double>() * static_cast<double>(batch.examples);
      logits = logits.to(torch::kCPU);
      torch::Tensor slot = rows.narrow(0, b * batch_size, batch.examples);
      if (single) {
        const torch::Tensor probs = torch::softmax(logits, /*dim=*/1).to(torch::kDouble);  // [B, L]
        const torch::Tensor truth = batch.labels.unsqueeze(1);                              // [B, 1]
        slot.select(1, 0).copy_(batch.labels);
        slot.select(1, 1).copy_(logits.argmax(/*dim=*/1));
        slot.select(1, 2).copy_(probs.gather(1, truth).squeeze(1));
      } else if (multi) {
        slot.narrow(1, 0, num_labels).copy_(batch.labels > 0.5);
        slot.narrow(1, num_labels, num_labels).copy_(torch::sigmoid(logits) > 0.5);
      }
    }
  }
  model.train();
  std::vector<torch::Tensor> shared = {losses, rows};
  comm.allreduce_sum(shared);

  double loss_sum = 0;
  for (std::int64_t b = 0; b < num_batches; ++b) loss_sum += losses[b].item<double>();
  std::vector<std::int64_t> y_true, y_pred;
  std::vector<double> p_true;
  std::vector<std::uint8_t> hot_true, hot_pred;
  const torch::Tensor r = rows.contiguous();
  const double* v = r.data_ptr<double>();
  for (std::size_t i = 0; i < n; ++i, v += width) {
    if (single) {
      y_true.push_back(static_cast<std::int64_t>(v[0]));
      y_pred.push_back(static_cast<std::int64_t>(v[1]));
      p_true.push_back(v[2]);
    } else if (multi) {
      for (std::int64_t k = 0; k < num_labels; ++k) hot_true.push_back(v[k] > 0.5 ? 1 : 0);
      for (std::int64_t k = 0; k < num_labels; ++k) hot_pred.push_back(v[num_labels + k] > 0.5 ? 1 : 0);
    }
  }
  const std::int64_t steps = num_batches;

  nlohmann::ordered_json out;
  out["eval_loss"] = n ? loss_sum / static_cast<double>(n) : 0.0;
  if (n > 0 && problem_type != model::ProblemType::kRegression) {
    const metrics::Report report =
        problem_type == model::ProblemType::kSingleLabelClassification
            ? metrics::single_label_report(y_true, y_pred, names, p_true)
            : metrics::multi_label_report(hot_true, hot_pred, names);
    for (const auto& [name, value] : report.scalars) out["eval_" + name] = value;
  }
  const double runtime = seconds_since(t0);
  out["eval_runtime"] = runtime;
  out["eval_samples_per_second"] = static_cast<double>(n) / std::max(runtime, 1e-9);
  out["eval_steps_per_second"] = static_cast<double>(steps) / std::max(runtime, 1e-9);
  return out;
}

}  // namespace hf::train
