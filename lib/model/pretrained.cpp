// from_pretrained / save_pretrained over HF model directories: config.json plus model.safetensors
// or a sharded model.safetensors.index.json ({"weight_map": {key: file}}), keys with or without the
// family's base prefix ("bert.", "roberta.", ...), as transformers' PreTrainedModel does.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "io/io.h"
#include "model/model.h"

namespace hf::model {
namespace {

namespace fs = std::filesystem;

// The checkpoint's tensors by key; the files stay mapped while this lives.
struct Checkpoint {
  std::vector<std::unique_ptr<io::SafetensorsFile>> files;
  std::vector<std::pair<const io::TensorView*, std::string>> tensors;  // view, file it came from
};

Checkpoint open_checkpoint(const std::string& dir) {
  const fs::path d(dir);
  Checkpoint ck;
  auto open = [&](const fs::path& p) -> io::SafetensorsFile& {
    ck.files.push_back(std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(p.string())));
    return *ck.files.back();
  };
  if (fs::exists(d / "model.safetensors")) {
    const io::SafetensorsFile& f = open(d / "model.safetensors");
    for (const io::TensorView& t : f.tensors()) ck.tensors.emplace_back(&t, (d / "model.safetensors").string());
    return ck;
  }
  const fs::path index = d / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const nlohmann::json j = nlohmann::json::parse(read_file(index.string()), nullptr, false);
    if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(ErrorKind::kDataErr, fmt::format("{}: expected JSON with a \"weight_map\" object", index.string()));
    std::map<std::string, std::vector<std::string>> keys_by_file;
    for (const auto& [key, file] : j["weight_map"].items()) {
      if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
        throw Error(ErrorKind::kDataErr, Where{index.string(), 0, key}, "expected a file name in this directory");
      keys_by_file[file.get<std::string>()].push_back(key);
    }
    for (const auto& [file, keys] : keys_by_file) {
      const io::SafetensorsFile& f = open(d / file);
      for (const std::string& key : keys) {
        const io::TensorView* t = f.find(key);
        if (t == nullptr)
          throw Error(ErrorKind::kDataErr, fmt::format("{}: tensor '{}' listed in {} is not in the file",
                                                       (d / file).string(), key, index.string()));
        ck.tensors.emplace_back(t, (d / file).string());
      }
    }
    return ck;
  }
  if (fs::exists(d / "pytorch_model.bin") || fs::exists(d / "pytorch_model.bin.index.json"))
    throw Error(ErrorKind::kNoInput,
                fmt::format("{}: only pytorch_model.bin (a pickle) is there; hfkit reads safetensors. Convert it with "
                            "python -c \"from transformers import AutoModel as M; M.from_pretrained('{}')"
                            ".save_pretrained('{}')\"",
                            dir, dir, dir));
  throw Error(ErrorKind::kNoInput, fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir));
}

torch::ScalarType torch_dtype(io::Dtype dtype, const std::string& file, const std::string& key) {
  switch (dtype) {
    case io::Dtype::kF32: return torch::kFloat32;
    case io::Dtype::kF16: return torch::kFloat16;
    case io::Dtype::kBF16: return torch::kBFloat16;
    case io::Dtype::kF64: return torch::kFloat64;
    default:
      throw Error(ErrorKind::kDataErr, Where{file, 0, key},
                  fmt::format("dtype {} is not a floating-point weight type", io::dtype_name(dtype)));
  }
}

// True when no element is NaN or infinite: its exponent bits are not all ones. Read straight from
// the mapping, one pass at memory speed (torch::isfinite(t).all() writes a byte per element first,
// ~0.1 s of a one-record run for MiniLM). Elements need not be aligned in the file: memcpy reads.
template <typename Bits>
bool finite_bits(const char* data, std::size_t nbytes, Bits exponent) {
  bool bad = false;
  for (std::size_t i = 0; i + sizeof(Bits) <= nbytes; i += sizeof(Bits)) {
    Bits v;
    std::memcpy(&v, data + i, sizeof(Bits));
    bad |= (v & exponent) == exponent;
  }
  return !bad;
}

bool all_finite(const io::TensorView& view) {
  const char* d = reinterpret_cast<const char*>(view.data);
  switch (view.dtype) {
    case io::Dtype::kF32: return finite_bits<std::uint32_t>(d, view.nbytes, 0x7f800000u);
    case io::Dtype::kF16: return finite_bits<std::uint16_t>(d, view.nbytes, 0x7c00u);
    case io::Dtype::kBF16: return finite_bits<std::uint16_t>(d, view.nbytes, 0x7f80u);
    case io::Dtype::kF64: return finite_bits<std::uint64_t>(d, view.nbytes, 0x7ff0000000000000ull);
    default: return true;  // torch_dtype() refuses the rest
  }
}

std::string join_keys(const std::vector<std::string>& keys) { return fmt::format("{}", fmt::join(keys, ", ")); }

void apply_options(ModelConfig& c, const LoadOptions& o) {
  if (!o.labels.empty()) {
    if (o.num_labels && *o.num_labels != static_cast<std::int64_t>(o.labels.size()))
      throw Error(ErrorKind::kUsage,
                  fmt::format("num_labels {} contradicts the {} label names given", *o.num_labels, o.labels.size()));
    c.id2label = o.labels;
  } else if (o.num_labels && *o.num_labels != c.num_labels()) {
    if (*o.num_labels < 1) throw Error(ErrorKind::kUsage, "num_labels must be at least 1");
    c.set_num_labels(*o.num_labels);
  }
  if (o.problem_type) c.problem_type = o.problem_type;
  if (c.problem_type == ProblemType::kSingleLabelClassification && c.num_labels() == 1)
    throw Error(ErrorKind::kUsage, "single_label_classification needs at least 2 labels (1 label means regression)");
}

}  // namespace

std::shared_ptr<SequenceClassifier> from_pretrained(const std::string& dir, const LoadOptions& options,
                                                    LoadReport* report) {
  if (!fs::is_directory(dir)) throw Error(ErrorKind::kNoInput, fmt::format("{}: no such model directory", dir));
  const std::unique_ptr<ModelConfig> config = ModelConfig::load(dir);
  apply_options(*config, options);
  const Checkpoint ck = open_checkpoint(dir);

  std::shared_ptr<SequenceClassifier> model;
  {
    std::optional<SkipInit> skip;
    if (!options.init_weights) skip.emplace();
    model = config->make_model();
  }
  const std::string base_prefix(model->base_prefix());
  const std::string label_layer = std::string(model->label_layer()) + ".";
  torch::NoGradGuard no_grad;
  auto params = model->named_parameters();
  LoadReport r;
  std::set<std::string> loaded;
  for (const auto& [view, file] : ck.tensors) {
    const std::string& key = view->name;
    // A buffer of old checkpoints (HF made it non-persistent); transformers skips it too.
    if (key.ends_with("embeddings.position_ids")) continue;
    std::string name = key;
    if (params.find(name) == nullptr && params.find(base_prefix + key) != nullptr) name = base_prefix + key;
    torch::Tensor* p = params.find(name);
    if (p == nullptr) {
      r.unexpected.push_back(key);
      continue;
    }
    if (!loaded.insert(name).second) continue;
    const std::vector<std::int64_t> shape(view->shape.begin(), view->shape.end());
    if (p->sizes() != torch::IntArrayRef(shape)) {
      if (!options.ignore_mismatched_sizes)
        throw ShapeMismatch(Where{file, 0, key},
                            fmt::format("shape [{}] but the model (config.json{}) needs [{}]", fmt::join(shape, ", "),
                                        name.starts_with(label_layer) ? ", num_labels" : "",
                                        fmt::join(p->sizes(), ", ")),
                            name);
      r.mismatched.push_back(key);
      continue;
    }
    const torch::ScalarType dtype = torch_dtype(view->dtype, file, key);
    // Straight into the parameter when it can hold the bytes as they are (one copy, no temporary).
    const bool direct = p->device().is_cpu() && p->is_contiguous() && p->scalar_type() == dtype;
    torch::Tensor t = direct ? *p : torch::empty(shape, torch::TensorOptions().dtype(dtype));
    if (static_cast<std::size_t>(t.nbytes()) != view->nbytes)
      throw Error(ErrorKind::kDataErr, Where{file, 0, key}, "byte size does not match dtype and shape");
    // A diverged run saves NaN weights; a model built from them answers every input with
    // confident-looking nonsense, so it is refused here, naming the tensor.
    if (!all_finite(*view))
      throw Error(ErrorKind::kDataErr, Where{file, 0, key}, "holds NaN or infinite values (a diverged run?)");
    // Copy out of the mapping: tensor data in a safetensors file need not be aligned.
    std::memcpy(t.data_ptr(), view->data, view->nbytes);
    if (!direct) p->copy_(t);
  }
  for (const auto& p : params)
    if (!loaded.count(p.key())) r.missing.push_back(p.key());
  if (!options.init_weights)
    for (const std::string& k : r.missing) model->init_parameter(k);
  for (const std::string& k : r.mismatched) {
    const std::string name = params.find(k) ? k : base_prefix + k;
    model->init_parameter(name);
  }
  if (!r.missing.empty())
    log::warn("{}: newly initialised (not in the checkpoint): {}", dir, join_keys(r.missing));
  if (!r.unexpected.empty()) log::warn("{}: ignored (not in the model): {}", dir, join_keys(r.unexpected));
  if (!r.mismatched.empty()) log::warn("{}: re-initialised (shape differs): {}", dir, join_keys(r.mismatched));
  model->eval();
  if (report) *report = std::move(r);
  return model;
}

void save_pretrained(const SequenceClassifier& model, const std::string& dir) {
  make_dirs(dir);
  io::SafetensorsWriter writer;
  std::vector<torch::Tensor> keep;  // the bytes must outlive write()
  for (const auto& p : model.named_parameters()) {
    torch::Tensor t = p.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
    writer.add(p.key(), io::Dtype::kF32, std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end()),
               std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes()));
    keep.push_back(std::move(t));
  }
  writer.set_metadata("format", "pt");  // transformers checks it
  writer.write((fs::path(dir) / "model.safetensors").string());
  write_file_atomic((fs::path(dir) / "config.json").string(), model.config().to_json().dump(2) + "\n");
}

}  // namespace hf::model
