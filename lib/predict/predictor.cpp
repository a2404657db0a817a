// Predictor: tokenization on a thread pool, length-sorted batches padded to their longest text,
// the forward pass under inference mode, and the heads' post-processing (softmax / sigmoid +
// thresholds / raw values) computed on the CPU in double precision from fp32 logits.
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <mutex>
#include <numeric>

#include <ATen/Parallel.h>

#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/thread_pool.h"
#include "model/device.h"
#include "model/model.h"
#include "predict/predict.h"
#include "tokenizer/tokenizer.h"

namespace hf::predict {
namespace {

constexpr float kDefaultThreshold = 0.5f;  // multi-label decision threshold when none is given
constexpr std::size_t kMinGrain = 16;      // texts per tokenizer task: below, threads cost more than they save
// Each batch in flight holds its own activations; more than 4 was not measured (2 cores here).
constexpr int kMaxAutoParallelBatches = 4;

// HF's reading of the head: problem_type when set, else regression for one label, else softmax.
Task task_of(const model::ModelConfig& c) {
  if (c.problem_type) {
    switch (*c.problem_type) {
      case model::ProblemType::kSingleLabelClassification: return Task::kSingleLabel;
      case model::ProblemType::kMultiLabelClassification: return Task::kMultiLabel;
      case model::ProblemType::kRegression: return Task::kRegression;
    }
  }
  return c.num_labels() == 1 ? Task::kRegression : Task::kSingleLabel;
}

float parse_probability(std::string_view s, std::string_view part) {
  float v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !(v >= 0.0f && v <= 1.0f))
    throw Error(ErrorKind::kUsage, fmt::format("--threshold: '{}': expected a number in [0, 1]", part));
  return v;
}

// --parallel-batches -> batches run at once: 1 on a GPU, whose one stream orders the batches
// anyway (--device cuda with more is refused up front; auto on a GPU just logs it).
int resolve_parallel_batches(int asked, int threads, bool cpu) {
  if (!cpu) {
    if (asked > 1) log::info("--parallel-batches {}: batches run one at a time on a GPU", asked);
    return 1;
  }
  if (asked == 0) {
    int p = std::min(threads, kMaxAutoParallelBatches);
    while (threads % p != 0) --p;
    return p;
  }
  if (threads % asked != 0)
    throw Error(ErrorKind::kUsage,
                fmt::format("--parallel-batches {} must divide the thread count ({}): each batch gets an equal share",
                            asked, threads));
  return asked;
}

}  // namespace

std::vector<float> parse_thresholds(std::string_view spec, std::span<const std::string> labels) {
  std::vector<float> out(labels.size(), kDefaultThreshold);
  if (spec.empty()) return out;
  std::vector<bool> named(labels.size(), false);
  std::size_t start = 0;
  while (start <= spec.size()) {
    std::size_t comma = spec.find(',', start);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view part = spec.substr(start, comma - start);
    start = comma + 1;
    if (part.empty()) throw Error(ErrorKind::kUsage, fmt::format("--threshold: empty part in '{}'", spec));
    // Label names may hold '=' themselves, so the value is what follows the last one.
    std::size_t eq = part.rfind('=');
    if (eq == std::string_view::npos) {
      float v = parse_probability(part, part);
      for (std::size_t i = 0; i < out.size(); ++i)
        if (!named[i]) out[i] = v;
      continue;
    }
    std::string_view name = part.substr(0, eq);
    auto it = std::find(labels.begin(), labels.end(), name);
    if (it == labels.end())
      throw Error(ErrorKind::kUsage,
                  fmt::format("--threshold: unknown label '{}' (labels: {})", name, fmt::join(labels, ", ")));
    const auto i = static_cast<std::size_t>(it - labels.begin());
    out[i] = parse_probability(part.substr(eq + 1), part);
    named[i] = true;
  }
  return out;
}

namespace {

// --dtype -> the weights' dtype. "auto" keeps what the device's fast path is: bf16 where CUDA has
// bf16 tensor cores (the whole model in bf16, not autocast: half the memory traffic), else fp32.
torch::ScalarType resolve_dtype(const std::string& name, const model::DeviceSetup& dev, bool int8) {
  torch::ScalarType t = torch::kFloat;
  if (name == "auto") t = dev.autocast_bf16 && !int8 ? torch::kBFloat16 : torch::kFloat;
  else if (name == "bfloat16") t = torch::kBFloat16;
  else if (name == "float16") t = torch::kHalf;
  else if (name != "float32")
    throw Error(ErrorKind::kUsage,
                fmt::format("--dtype '{}' is not one of auto, float32, bfloat16, float16", name));
  if (int8 && t != torch::kFloat)
    throw Error(ErrorKind::kConfig, fmt::format("--quantize int8 computes in float32; it cannot run with --dtype {}",
                                                name));
  return t;
}

}  // namespace

struct Predictor::Impl {
  std::shared_ptr<model::SequenceClassifier> model;
  tokenizer::Tokenizer tok;
  model::DeviceSetup dev;
  torch::ScalarType dtype = torch::kFloat;  // of the weights and activations
  tokenizer::EncodeOptions encode_options;
  std::size_t batch_size = 32;
  bool stop_on_signal = true;
  Task task = Task::kSingleLabel;
  std::vector<float> thresholds;  // multi-label, one per label
  std::int32_t pad_id = 0;
  std::unique_ptr<ThreadPool> pool;
  mutable std::mutex pool_mu;  // ThreadPool::parallel_for is not reentrant
  std::unique_ptr<ThreadPool> batch_pool;  // --parallel-batches > 1: one worker per batch in flight
  mutable std::mutex batch_pool_mu;

  Impl(tokenizer::Tokenizer t) : tok(std::move(t)) {}
  std::vector<tokenizer::Encoding> encode(std::span<const std::string_view> texts,
                                          std::span<const std::string_view> pairs,
                                          std::vector<Prediction>& out) const;
  void run_batches(const std::vector<std::size_t>& order, const std::vector<tokenizer::Encoding>& enc,
                   bool with_types, std::vector<Prediction>& out) const;
  void run_batch(std::span<const std::size_t> rows, const std::vector<tokenizer::Encoding>& enc, bool with_types,
                 std::vector<Prediction>& out) const;
  void decode(const float* logits, std::int64_t num_labels, Prediction& p) const;
};

Predictor::Predictor(const std::string& model_dir, const PredictorOptions& o) {
  if (o.batch_size == 0) throw Error(ErrorKind::kUsage, "--batch-size must be at least 1");
  if (o.threads < 0) throw Error(ErrorKind::kUsage, "--threads must be 0 (all cores) or more");
  const model::Quantization quantization = model::parse_quantization(o.quantize);
  const bool int8 = quantization == model::Quantization::kInt8;
  // Checked on the flag, before any device is probed, so the refusal is the same with or without a GPU.
  if (int8 && o.device.starts_with("cuda"))
    throw Error(ErrorKind::kConfig,
                fmt::format("--quantize int8 runs on the CPU only (fbgemm kernels), not --device {}", o.device));
  if (int8 && o.device == "auto") log::info("--quantize int8: running on the CPU");
  if (o.parallel_batches < 0) throw Error(ErrorKind::kUsage, "--parallel-batches must be 0 (auto) or more");
  if (o.parallel_batches > 1 && o.device.starts_with("cuda"))
    throw Error(ErrorKind::kUsage, fmt::format("--parallel-batches {} runs batches side by side on CPU cores, not "
                                               "--device {}: use 0 or 1",
                                               o.parallel_batches, o.device));
  const model::DeviceSetup dev = model::resolve_device(int8 && o.device == "auto" ? "cpu" : o.device);
  const torch::ScalarType dtype = resolve_dtype(o.dtype, dev, int8);
  // The tokenizer first: it is quick, and a directory without one fails before the weights load.
  impl_ = std::make_unique<Impl>(tokenizer::Tokenizer::load(model_dir));
  Impl& m = *impl_;
  model::LoadOptions load;
  load.init_weights = false;  // every weight comes from the checkpoint: drawing them first only costs start-up
  m.model = model::from_pretrained(model_dir, load);
  m.model->eval();
  m.model->quantize(quantization);
  if (dev.device != torch::kCPU || dtype != torch::kFloat) m.model->to(dev.device, dtype);
  m.dev = dev;
  m.dtype = dtype;
  if (dtype != torch::kFloat) log::info("dtype: {} weights and activations", c10::toString(dtype));
  const model::ModelConfig& c = m.model->config();
  m.task = task_of(c);
  m.batch_size = o.batch_size;
  m.stop_on_signal = o.stop_on_signal;
  const auto max_positions = static_cast<std::size_t>(c.max_length());
  m.encode_options.max_length = o.max_length == 0 ? max_positions : o.max_length;
  if (m.encode_options.max_length > max_positions)
    throw Error(ErrorKind::kUsage,
                fmt::format("--max-length {} exceeds the model's max_position_embeddings ({}{})", o.max_length,
                            max_positions,
                            c.max_length() == c.max_position_embeddings ? "" : " usable positions"));
  if (m.encode_options.max_length < m.tok.num_special_tokens(true) + 2)
    throw Error(ErrorKind::kUsage, fmt::format("--max-length {} leaves no room for text", o.max_length));
  m.pad_id = m.tok.pad_id() >= 0 ? m.tok.pad_id() : static_cast<std::int32_t>(c.pad_token_id);
  if (m.task == Task::kMultiLabel) {
    m.thresholds = parse_thresholds(o.threshold, c.id2label);
  } else if (!o.threshold.empty()) {
    throw Error(ErrorKind::kUsage, std::string("--threshold applies to multi-label models only; this one is ") +
                                       (m.task == Task::kRegression ? "regression" : "single-label"));
  }
  // The pool caps its own size (with a warning); torch gets the same bound.
  m.pool = std::make_unique<ThreadPool>(o.threads);
  // --threads 0: torch's own default (a thread per physical core of the machine), at most the CPUs
  // this process may run on (a Slurm step or a cpuset grants a few of them).
  const int torch_threads = o.threads > 0 ? m.pool->size() : std::min(torch::get_num_threads(), m.pool->size());
  const int parallel = resolve_parallel_batches(o.parallel_batches, torch_threads, dev.device == torch::kCPU);
  if (parallel > 1) {
    // Every batch worker applies torch's (process-wide) count to itself: at::init_num_threads.
    torch::set_num_threads(torch_threads / parallel);
    m.batch_pool = std::make_unique<ThreadPool>(parallel);
  } else if (torch_threads != torch::get_num_threads()) {
    torch::set_num_threads(torch_threads);
  }
  log::debug("predictor: {} labels, max_length {}, batch {}, device {}, batches: {} at once on {} torch threads each, quantize {}, "
             "dtype {}",
             c.num_labels(), m.encode_options.max_length, m.batch_size, dev.device.str(), parallel,
             torch::get_num_threads(), model::to_string(quantization), c10::toString(dtype));
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

Task Predictor::task() const { return impl_->task; }
const std::vector<std::string>& Predictor::labels() const { return impl_->model->config().id2label; }
std::size_t Predictor::max_length() const { return impl_->encode_options.max_length; }
std::string Predictor::device() const { return impl_->dev.device.str(); }

std::vector<tokenizer::Encoding> Predictor::Impl::encode(std::span<const std::string_view> texts,
                                                         std::span<const std::string_view> pairs,
                                                         std::vector<Prediction>& out) const {
  std::vector<tokenizer::Encoding> enc(texts.size());
  auto work = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      try {
        enc[i] = pairs.empty() ? tok.encode(texts[i], encode_options)
                               : tok.encode_pair(texts[i], pairs[i], encode_options);
      } catch (const std::exception& e) {
        out[i].error = e.what();
      }
    }
  };
  // A concurrent caller (a server thread) finds the pool busy and tokenizes on its own thread.
  std::unique_lock<std::mutex> lock(pool_mu, std::try_to_lock);
  const std::size_t grain = std::max(kMinGrain, texts.size() / (static_cast<std::size_t>(pool->size()) * 4) + 1);
  if (lock.owns_lock() && pool->size() > 1 && texts.size() > grain) {
    pool->parallel_for(texts.size(), grain, work);
  } else {
    work(0, texts.size());
  }
  return enc;
}

void Predictor::Impl::decode(const float* logits, std::int64_t num_labels, Prediction& p) const {
  const auto n = static_cast<std::size_t>(num_labels);
  p.scores.resize(n);
  p.logits.assign(logits, logits + n);
  switch (task) {
    case Task::kSingleLabel: {
      const float top = *std::max_element(logits, logits + n);
      double sum = 0;
      for (std::size_t j = 0; j < n; ++j) sum += std::exp(static_cast<double>(logits[j]) - top);
      for (std::size_t j = 0; j < n; ++j) p.scores[j] = static_cast<float>(std::exp(static_cast<double>(logits[j]) - top) / sum);
      p.label = std::max_element(logits, logits + n) - logits;  // the first of equal maxima, as argmax
      break;
    }
    case Task::kMultiLabel:
      for (std::size_t j = 0; j < n; ++j) {
        p.scores[j] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(logits[j]))));
        if (p.scores[j] > thresholds[j]) p.labels.push_back(static_cast<std::int64_t>(j));
      }
      break;
    case Task::kRegression:
      std::copy(logits, logits + n, p.scores.begin());
      break;
  }
}

void Predictor::Impl::run_batch(std::span<const std::size_t> rows, const std::vector<tokenizer::Encoding>& enc,
                                bool with_types, std::vector<Prediction>& out) const {
  const auto b = static_cast<std::int64_t>(rows.size());
  std::int64_t t = 0;
  for (std::size_t r : rows) t = std::max(t, static_cast<std::int64_t>(enc[r].length));
  // [B, T]: ids padded with the pad token, mask true on real tokens, segment ids for pairs.
  torch::Tensor ids = torch::full({b, t}, pad_id, torch::kLong);
  torch::Tensor mask = torch::zeros({b, t}, torch::kBool);
  torch::Tensor types = with_types ? torch::zeros({b, t}, torch::kLong) : torch::Tensor();
  auto* ids_p = ids.data_ptr<std::int64_t>();
  auto* mask_p = mask.data_ptr<bool>();
  auto* types_p = with_types ? types.data_ptr<std::int64_t>() : nullptr;
  for (std::int64_t i = 0; i < b; ++i) {
    const tokenizer::Encoding& e = enc[rows[static_cast<std::size_t>(i)]];
    for (std::size_t j = 0; j < e.length; ++j) {
      ids_p[i * t + static_cast<std::int64_t>(j)] = e.ids[j];
      mask_p[i * t + static_cast<std::int64_t>(j)] = true;
      if (types_p) types_p[i * t + static_cast<std::int64_t>(j)] = e.type_ids[j];
    }
  }
  torch::Tensor logits;
  {
    c10::InferenceMode guard;
    const torch::Device& device = dev.device;
    if (device != torch::kCPU) {
      // Page-locked staging lets the copies run asynchronously on the current stream.
      ids = ids.pin_memory().to(device, /*non_blocking=*/true);
      mask = mask.pin_memory().to(device, /*non_blocking=*/true);
      if (with_types) types = types.pin_memory().to(device, /*non_blocking=*/true);
    }
    // forward() is not const but is thread-safe in eval mode under inference mode (model.h).
    logits = model->forward(ids, mask, types).to(torch::kCPU, torch::kFloat).contiguous();  // [B, L]
  }
  const std::int64_t num_labels = logits.size(1);
  const float* lp = logits.data_ptr<float>();
  // Finite weights can still overflow (or a model edited in memory): a NaN would print as a
  // label with "score": null, so it is an error, not a prediction.
  if (!std::all_of(lp, lp + b * num_labels, [](float v) { return std::isfinite(v); }))
    throw Error(ErrorKind::kDataErr, "the model's output is not finite (NaN or infinity): its weights are unusable");
  for (std::int64_t i = 0; i < b; ++i) {
    Prediction& p = out[rows[static_cast<std::size_t>(i)]];
    const tokenizer::Encoding& e = enc[rows[static_cast<std::size_t>(i)]];
    p.tokens = e.length;
    p.truncated = e.truncated;
    decode(lp + i * num_labels, num_labels, p);
  }
}

std::vector<Prediction> Predictor::predict(std::span<const std::string_view> texts,
                                           std::span<const std::string_view> pairs) const {
  if (!pairs.empty() && pairs.size() != texts.size())
    throw Error(ErrorKind::kInternal,
                fmt::format("predict: {} texts but {} second texts of pairs", texts.size(), pairs.size()));
  const Impl& m = *impl_;
  std::vector<Prediction> out(texts.size());
  const std::vector<tokenizer::Encoding> enc = m.encode(texts, pairs, out);
  // Longest first: batches of similar lengths waste little on padding, and the largest batch (the
  // memory peak) comes first.
  std::vector<std::size_t> order;
  order.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i)
    if (out[i].error.empty()) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return enc[a].length > enc[b].length; });
  m.run_batches(order, enc, !pairs.empty(), out);
  return out;
}

void Predictor::Impl::run_batches(const std::vector<std::size_t>& order, const std::vector<tokenizer::Encoding>& enc,
                                  bool with_types, std::vector<Prediction>& out) const {
  const std::size_t batches = (order.size() + batch_size - 1) / batch_size;
  auto run = [&](std::size_t first, std::size_t last) {
    for (std::size_t k = first; k < last; ++k) {
      if (stop_on_signal) check_stop();  // a window holds many batches: stop between them, not after all
      const std::size_t start = k * batch_size;
      const std::size_t n = std::min(batch_size, order.size() - start);
      run_batch(std::span<const std::size_t>(order).subspan(start, n), enc, with_types, out);
    }
  };
  // Batches write disjoint rows of `out`. A concurrent caller finds the pool busy and runs its
  // batches one after the other on its own thread.
  std::unique_lock<std::mutex> lock(batch_pool_mu, std::try_to_lock);
  if (batch_pool && lock.owns_lock() && batches > 1) {
    batch_pool->parallel_for(batches, 1, [&](std::size_t first, std::size_t last) {
      at::init_num_threads();  // OpenMP's thread count is per thread: a new worker starts at every core
      run(first, last);
    });
  } else {
    run(0, batches);
  }
}

}  // namespace hf::predict
