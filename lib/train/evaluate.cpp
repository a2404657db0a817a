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

torch::Tensor forward_loss(model::BertForSequenceClassification& model, const Batch& batch, const Runtime& rt,
                           model::ProblemType problem_type, torch::Tensor* logits_out) {
  const bool async = rt.device.is_cuda();  // batches are pinned on CUDA
  const torch::Tensor ids = batch.input_ids.to(rt.device, async);
  const torch::Tensor mask = batch.attention_mask.to(rt.device, async);
  const torch::Tensor types = batch.token_type_ids.to(rt.device, async);
  const torch::Tensor labels = batch.labels.to(rt.device, async);
  torch::Tensor logits;
  {
    model::AutocastGuard autocast(rt.autocast_bf16);
    logits = model->forward(ids, mask, types);  // [B, L]
  }
  logits = logits.to(torch::kFloat);  // the loss in fp32, as autocast runs it
  if (logits_out) *logits_out = logits;
  return model::classification_loss(problem_type, logits, labels);
}

nlohmann::ordered_json evaluate(model::BertForSequenceClassification& model, const data::Dataset& dataset,
                                std::int64_t batch_size, const Runtime& rt, const std::vector<std::int64_t>& label_map,
                                model::ProblemType problem_type) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t n = dataset.size();
  // Longest first: the order does not change any metric, and similar lengths pad least.
  std::vector<std::int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return dataset.input_ids(a).size() > dataset.input_ids(b).size();
  });
  const std::vector<std::string>& names = model->config().id2label;
  std::vector<std::int64_t> y_true, y_pred;
  std::vector<double> p_true;
  std::vector<std::uint8_t> hot_true, hot_pred;
  double loss_sum = 0;
  std::int64_t steps = 0;

  model->eval();
  {
    torch::NoGradGuard no_grad;
    BatchLoader loader(dataset, order, batch_size, 0, 0, model->config().pad_token_id, label_map, rt.device.is_cuda());
    for (std::int64_t b = 0; b < loader.num_batches(); ++b, ++steps) {
      const Batch batch = loader.next();
      torch::Tensor logits;
      const torch::Tensor loss = forward_loss(model, batch, rt, problem_type, &logits);
      loss_sum += loss.item<double>() * static_cast<double>(batch.examples);
      logits = logits.to(torch::kCPU);
      if (problem_type == model::ProblemType::kSingleLabelClassification) {
        const torch::Tensor probs = torch::softmax(logits, /*dim=*/1).to(torch::kDouble).contiguous();  // [B, L]
        const torch::Tensor pred = logits.argmax(/*dim=*/1).contiguous();                               // [B]
        const std::int64_t width = probs.size(1);
        for (std::int64_t r = 0; r < batch.examples; ++r) {
          const std::int64_t truth = batch.labels.data_ptr<std::int64_t>()[r];
          y_true.push_back(truth);
          y_pred.push_back(pred.data_ptr<std::int64_t>()[r]);
          p_true.push_back(probs.data_ptr<double>()[r * width + truth]);
        }
      } else if (problem_type == model::ProblemType::kMultiLabelClassification) {
        const torch::Tensor pred = (torch::sigmoid(logits) > 0.5).to(torch::kByte).contiguous();
        const torch::Tensor truth = (batch.labels > 0.5).to(torch::kByte).contiguous();
        hot_pred.insert(hot_pred.end(), pred.data_ptr<std::uint8_t>(), pred.data_ptr<std::uint8_t>() + pred.numel());
        hot_true.insert(hot_true.end(), truth.data_ptr<std::uint8_t>(), truth.data_ptr<std::uint8_t>() + truth.numel());
      }
    }
  }
  model->train();

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
