// Example order (seeded shuffle, HF's length grouping), dynamic padding into batches, and the loader
// that builds batches ahead of the loop.
#include <algorithm>
#include <random>

#include "core/error.h"
#include "data/data.h"
#include "train/internal.h"

namespace hf::train {
namespace {

// Uniform in [0, bound) by rejection: std::uniform_int_distribution differs between standard
// libraries, and the order must be the same everywhere for a checkpoint to resume anywhere.
std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t bound) {
  const std::uint64_t limit = std::mt19937_64::max() - std::mt19937_64::max() % bound;
  std::uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % bound;
}

}  // namespace

std::vector<std::int64_t> epoch_order(std::size_t n, std::uint64_t seed, std::int64_t epoch,
                                      std::span<const std::int64_t> lengths, std::int64_t batch_size) {
  std::vector<std::int64_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::int64_t>(i);
  std::mt19937_64 rng(seed + static_cast<std::uint64_t>(epoch));
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);
  if (lengths.empty() || n == 0) return order;

  const auto b = static_cast<std::size_t>(std::max<std::int64_t>(batch_size, 1));
  const std::size_t mega = std::max<std::size_t>(std::min<std::size_t>(n / (b * 4), 50), 1) * b;
  auto longer = [&](std::int64_t x, std::int64_t y) { return lengths[x] > lengths[y]; };
  std::size_t longest_group = 0;
  for (std::size_t start = 0; start < n; start += mega) {
    auto first = order.begin() + static_cast<std::ptrdiff_t>(start);
    auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(start + mega, n));
    std::stable_sort(first, last, longer);
    if (lengths[*first] > lengths[order[longest_group]]) longest_group = start;
  }
  std::swap(order[0], order[longest_group]);
  return order;
}

Batch collate(const data::Dataset& dataset, std::span<const std::int64_t> indices, std::int64_t pad_token_id,
              std::span<const std::int64_t> label_map, bool pin) {
  const auto b = static_cast<std::int64_t>(indices.size());
  std::int64_t t = 1;
  for (std::int64_t i : indices) t = std::max<std::int64_t>(t, static_cast<std::int64_t>(dataset.input_ids(i).size()));
  const auto opts = torch::TensorOptions().dtype(torch::kLong).pinned_memory(pin);
  Batch batch;
  batch.input_ids = torch::full({b, t}, pad_token_id, opts);
  batch.attention_mask = torch::zeros({b, t}, opts);
  batch.token_type_ids = torch::zeros({b, t}, opts);
  auto* ids = batch.input_ids.data_ptr<std::int64_t>();
  auto* mask = batch.attention_mask.data_ptr<std::int64_t>();
  auto* types = batch.token_type_ids.data_ptr<std::int64_t>();
  const data::DatasetMeta& meta = dataset.meta();
  const auto num_labels = static_cast<std::int64_t>(meta.label_names.size());
  auto model_label = [&](std::int64_t l) { return label_map.empty() ? l : label_map[l]; };
  if (meta.multi_label) {
    batch.labels = torch::zeros({b, num_labels}, torch::TensorOptions().dtype(torch::kFloat).pinned_memory(pin));
  } else {
    batch.labels = torch::empty({b}, opts);
  }
  for (std::int64_t r = 0; r < b; ++r) {
    const auto i = static_cast<std::size_t>(indices[r]);
    const auto row_ids = dataset.input_ids(i);
    const auto row_types = dataset.token_type_ids(i);
    for (std::size_t j = 0; j < row_ids.size(); ++j) {
      ids[r * t + static_cast<std::int64_t>(j)] = row_ids[j];
      mask[r * t + static_cast<std::int64_t>(j)] = 1;
      if (!row_types.empty()) types[r * t + static_cast<std::int64_t>(j)] = row_types[j];
    }
    batch.tokens += static_cast<std::int64_t>(row_ids.size());
    if (meta.multi_label) {
      const auto hot = dataset.multi_hot(i);
      float* out = batch.labels.data_ptr<float>() + r * num_labels;
      for (std::int64_t k = 0; k < num_labels; ++k) out[model_label(k)] = hot[static_cast<std::size_t>(k)];
    } else {
      batch.labels.data_ptr<std::int64_t>()[r] = model_label(dataset.label(i));
    }
  }
  batch.examples = b;
  return batch;
}

BatchLoader::BatchLoader(const data::Dataset& dataset, std::vector<std::int64_t> order, std::int64_t batch_size,
                         std::int64_t first_batch, int workers, std::int64_t pad_token_id,
                         std::vector<std::int64_t> label_map, bool pin)
    : dataset_(dataset),
      order_(std::move(order)),
      batch_size_(batch_size),
      num_batches_((static_cast<std::int64_t>(order_.size()) + batch_size - 1) / batch_size),
      next_(first_batch),
      queued_(first_batch),
      workers_(workers),
      pad_token_id_(pad_token_id),
      label_map_(std::move(label_map)),
      pin_(pin) {}

BatchLoader::~BatchLoader() {
  for (auto& f : ahead_)
    if (f.valid()) f.wait();
}

std::int64_t BatchLoader::batch_examples(std::int64_t b) const {
  return std::min<std::int64_t>(batch_size_, static_cast<std::int64_t>(order_.size()) - b * batch_size_);
}

Batch BatchLoader::make(std::int64_t b) const {
  const std::span<const std::int64_t> all(order_);
  return collate(dataset_, all.subspan(static_cast<std::size_t>(b * batch_size_),
                                       static_cast<std::size_t>(batch_examples(b))),
                 pad_token_id_, label_map_, pin_);
}

void BatchLoader::fill() {
  // Two batches in flight per worker keeps each worker busy while the loop consumes.
  while (queued_ < num_batches_ && static_cast<int>(ahead_.size()) < 2 * workers_) {
    const std::int64_t b = queued_++;
    ahead_.push_back(std::async(std::launch::async, [this, b] { return make(b); }));
  }
}

Batch BatchLoader::next() {
  if (next_ >= num_batches_) throw Error(ErrorKind::kInternal, "BatchLoader: no batches left");
  if (workers_ <= 0) return make(next_++);
  fill();
  Batch batch = ahead_.front().get();
  ahead_.pop_front();
  ++next_;
  fill();
  return batch;
}

}  // namespace hf::train
