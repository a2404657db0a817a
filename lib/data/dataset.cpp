// Writing and mmap-reading the tokenized dataset format described in data.h.
#include <nlohmann/json.hpp>

#include <cstring>

#include "core/error.h"
#include "data/data.h"
#include "io/io.h"

namespace hf::data {
namespace {

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

}  // namespace

void write_split(const std::string& dir, const std::string& split, const SplitData& data,
                 const DatasetMeta& meta) {
  const auto n = static_cast<std::int64_t>(data.size());
  const auto tokens = static_cast<std::int64_t>(data.input_ids.size());
  io::SafetensorsWriter w;
  w.add("input_ids", io::DType::kI32, {tokens}, bytes_of(data.input_ids));
  w.add("offsets", io::DType::kI64, {n + 1}, bytes_of(data.offsets));
  if (meta.has_pairs) w.add("token_type_ids", io::DType::kI32, {tokens}, bytes_of(data.token_type_ids));
  if (!meta.label_names.empty()) {
    if (meta.multi_label) {
      w.add("labels", io::DType::kF32, {n, static_cast<std::int64_t>(meta.label_names.size())},
            bytes_of(data.multi_hot));
    } else {
      w.add("labels", io::DType::kI64, {n}, bytes_of(data.labels));
    }
  }
  w.set_metadata("hfkit_format", std::to_string(kFormatVersion));
  w.set_metadata("labels", nlohmann::json(meta.label_names).dump());
  w.set_metadata("multi_label", meta.multi_label ? "true" : "false");
  w.set_metadata("tokenizer_sha256", meta.tokenizer_sha256);
  w.set_metadata("source_sha256", meta.source_sha256);
  w.set_metadata("max_length", std::to_string(meta.max_length));
  w.set_metadata("split", split);
  w.set_metadata("count", std::to_string(n));
  if (!meta.run_id.empty()) w.set_metadata("run_id", meta.run_id);
  w.write(dir + "/" + split + ".safetensors");
}

struct Dataset::Impl {
  std::string path;
  io::SafetensorsFile file;
  DatasetMeta meta;
  std::span<const std::int32_t> ids;
  std::span<const std::int64_t> offsets;
  std::span<const std::int32_t> type_ids;
  std::span<const std::int64_t> labels;
  std::span<const float> multi_hot;
  std::size_t n = 0;
};

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::~Dataset() = default;
Dataset::Dataset(Dataset&&) noexcept = default;
Dataset& Dataset::operator=(Dataset&&) noexcept = default;

Dataset Dataset::open(const std::string& dir, const std::string& split) {
  const std::string path = dir + "/" + split + ".safetensors";
  auto impl = std::make_unique<Impl>(Impl{path, io::SafetensorsFile::open(path), {}, {}, {}, {}, {}, {}, 0});
  const auto& file = impl->file;
  auto bad = [&](const std::string& field, const std::string& msg) {
    return Error(ErrorKind::kDataErr, Where{path, 0, field}, msg);
  };
  const auto& md = file.metadata();
  auto get = [&](const std::string& key) -> std::string {
    auto it = md.find(key);
    if (it == md.end()) throw bad(key, "missing from __metadata__ (not an hfkit dataset?)");
    return it->second;
  };
  if (get("hfkit_format") != std::to_string(kFormatVersion))
    throw bad("hfkit_format", "unsupported dataset format version " + get("hfkit_format"));
  try {
    impl->meta.label_names = nlohmann::json::parse(get("labels")).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception&) {
    throw bad("labels", "expected a JSON list of strings");
  }
  impl->meta.multi_label = get("multi_label") == "true";
  impl->meta.tokenizer_sha256 = get("tokenizer_sha256");
  impl->meta.source_sha256 = get("source_sha256");
  impl->meta.max_length = std::stoull(get("max_length"));
  if (auto it = md.find("run_id"); it != md.end()) impl->meta.run_id = it->second;

  auto tensor = [&](const char* name) -> const io::TensorView& {
    const io::TensorView* t = file.find(name);
    if (t == nullptr) throw bad(name, "tensor missing");
    return *t;
  };
  impl->ids = tensor("input_ids").as<std::int32_t>();
  impl->offsets = tensor("offsets").as<std::int64_t>();
  if (impl->offsets.empty() || impl->offsets.front() != 0) throw bad("offsets", "must start with 0");
  impl->n = impl->offsets.size() - 1;
  for (std::size_t i = 0; i < impl->n; ++i)
    if (impl->offsets[i + 1] < impl->offsets[i]) throw bad("offsets", "not non-decreasing at " + std::to_string(i));
  if (static_cast<std::size_t>(impl->offsets.back()) != impl->ids.size())
    throw bad("offsets", "last offset does not equal the number of tokens");
  if (const io::TensorView* t = file.find("token_type_ids")) {
    impl->type_ids = t->as<std::int32_t>();
    if (impl->type_ids.size() != impl->ids.size()) throw bad("token_type_ids", "length differs from input_ids");
    impl->meta.has_pairs = true;
  }
  if (!impl->meta.label_names.empty()) {
    const io::TensorView& t = tensor("labels");
    if (impl->meta.multi_label) {
      impl->multi_hot = t.as<float>();
      if (impl->multi_hot.size() != impl->n * impl->meta.label_names.size())
        throw bad("labels", "shape does not match [N, num_labels]");
    } else {
      impl->labels = t.as<std::int64_t>();
      if (impl->labels.size() != impl->n) throw bad("labels", "length differs from the number of examples");
      for (std::int64_t l : impl->labels)
        if (l < 0 || static_cast<std::size_t>(l) >= impl->meta.label_names.size())
          throw bad("labels", "label index " + std::to_string(l) + " out of range");
    }
  }
  return Dataset(std::move(impl));
}

std::size_t Dataset::size() const { return impl_->n; }

std::span<const std::int32_t> Dataset::input_ids(std::size_t i) const {
  auto b = static_cast<std::size_t>(impl_->offsets[i]);
  auto e = static_cast<std::size_t>(impl_->offsets[i + 1]);
  return impl_->ids.subspan(b, e - b);
}

std::span<const std::int32_t> Dataset::token_type_ids(std::size_t i) const {
  if (impl_->type_ids.empty()) return {};
  auto b = static_cast<std::size_t>(impl_->offsets[i]);
  auto e = static_cast<std::size_t>(impl_->offsets[i + 1]);
  return impl_->type_ids.subspan(b, e - b);
}

std::int64_t Dataset::label(std::size_t i) const { return impl_->labels[i]; }

std::span<const float> Dataset::multi_hot(std::size_t i) const {
  std::size_t k = impl_->meta.label_names.size();
  return impl_->multi_hot.subspan(i * k, k);
}

const DatasetMeta& Dataset::meta() const { return impl_->meta; }
const std::string& Dataset::path() const { return impl_->path; }

void check_same_run(std::span<const Dataset* const> splits) {
  if (splits.size() < 2) return;
  const Dataset& first = *splits[0];
  for (const Dataset* other : splits.subspan(1)) {
    const DatasetMeta& a = first.meta();
    const DatasetMeta& b = other->meta();
    const bool same = a.run_id == b.run_id &&
                      (!a.run_id.empty() || (a.tokenizer_sha256 == b.tokenizer_sha256 &&
                                             a.source_sha256 == b.source_sha256));
    if (!same)
      throw Error(ErrorKind::kDataErr, Where{other->path(), 0, "run_id"},
                  "split comes from a different hf-preprocess run than " + first.path() + " (run " +
                      (b.run_id.empty() ? "unknown" : b.run_id) + " vs " + (a.run_id.empty() ? "unknown" : a.run_id) +
                      "): re-run hf-preprocess to write all splits together");
  }
}

}  // namespace hf::data
