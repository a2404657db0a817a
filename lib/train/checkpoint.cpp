// Checkpoint directories: written into `.checkpoint-N.tmp`, fsynced, renamed to `checkpoint-N`, then
// marked complete with `.complete` (written last); anything without the marker does not exist.
// Also the safetensors files of optimizer and RNG state, and rotation by save_total_limit.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "io/io.h"
#include "train/internal.h"

namespace hf::train {
namespace {

namespace fs = std::filesystem;

// What transformers' tokenizer loading reads; copied into every checkpoint and the final directory.
constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                           "special_tokens_map.json"};

// What every checkpoint holds (tokenizer files are copied when the model has them).
constexpr const char* kCheckpointFiles[] = {"config.json",           "model.safetensors", "optimizer.safetensors",
                                            "rng_state.safetensors", "scheduler.json",    "trainer_state.json"};

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(ErrorKind::kIo, "cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw_errno(ErrorKind::kIo, "cannot fsync directory", dir, err);
}

void remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) throw Error(ErrorKind::kIo, fmt::format("cannot remove '{}': {}", p.string(), ec.message()));
}

io::Dtype io_dtype(torch::ScalarType t, const std::string& name) {
  switch (t) {
    case torch::kFloat: return io::Dtype::kF32;
    case torch::kLong: return io::Dtype::kI64;
    case torch::kByte: return io::Dtype::kU8;
    default: throw Error(ErrorKind::kInternal, fmt::format("save_tensors: unsupported dtype for '{}'", name));
  }
}

}  // namespace

std::string checkpoint_name(std::int64_t step) { return fmt::format("{}{}", kCheckpointPrefix, step); }

std::optional<std::int64_t> checkpoint_step(std::string_view name) {
  if (!name.starts_with(kCheckpointPrefix)) return std::nullopt;
  const std::string_view digits = name.substr(std::strlen(kCheckpointPrefix));
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return std::stoll(std::string(digits));
}

storage::CheckpointLayout checkpoint_layout() { return {kCompleteMarker, checkpoint_step}; }

storage::KeepPolicy keep_policy(std::int64_t limit, std::function<std::string()> best) {
  return [limit, best = std::move(best)](const std::vector<storage::RemoteCheckpoint>& complete) {
    std::vector<CheckpointRef> refs;
    for (const auto& c : complete) refs.push_back({c.step, c.name});
    std::vector<std::string> keep;
    const std::vector<CheckpointRef> doomed = checkpoints_to_delete(refs, limit, best ? best() : "");
    for (const CheckpointRef& c : refs)
      if (std::none_of(doomed.begin(), doomed.end(), [&](const CheckpointRef& d) { return d.path == c.path; }))
        keep.push_back(c.path);
    return keep;
  };
}

const torch::Tensor* TensorFile::find(const std::string& name) const {
  for (const auto& [key, t] : tensors)
    if (key == name) return &t;
  return nullptr;
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  io::SafetensorsWriter writer;
  std::vector<torch::Tensor> keep;  // the bytes must outlive write()
  for (const auto& [name, tensor] : tensors) {
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    writer.add(name, io_dtype(t.scalar_type(), name), std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end()),
               std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes()));
    keep.push_back(std::move(t));
  }
  for (const auto& [k, v] : metadata) writer.set_metadata(k, v);
  writer.write(path);
}

TensorFile load_tensors(const std::string& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  TensorFile out;
  for (const auto& [k, v] : file.metadata()) out.metadata[k] = v;
  for (const io::TensorView& view : file.tensors()) {
    torch::ScalarType dtype;
    switch (view.dtype) {
      case io::Dtype::kF32: dtype = torch::kFloat; break;
      case io::Dtype::kI64: dtype = torch::kLong; break;
      case io::Dtype::kU8: dtype = torch::kByte; break;
      default:
        throw Error(ErrorKind::kDataErr, Where{path, 0, view.name},
                    fmt::format("unexpected dtype {}", io::dtype_name(view.dtype)));
    }
    const std::vector<std::int64_t> shape(view.shape.begin(), view.shape.end());
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    if (static_cast<std::size_t>(t.nbytes()) != view.nbytes)
      throw Error(ErrorKind::kDataErr, Where{path, 0, view.name}, "byte size does not match dtype and shape");
    std::memcpy(t.data_ptr(), view.data, view.nbytes);  // copy: mapped data need not be aligned
    out.tensors.emplace_back(view.name, std::move(t));
  }
  return out;
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* name : kTokenizerFiles) {
    const fs::path src = fs::path(from) / name;
    if (fs::exists(src)) write_file_atomic((fs::path(to) / name).string(), read_file(src.string()));
  }
}

std::string write_checkpoint(const std::string& output_dir, std::int64_t step,
                             const model::SequenceClassifier& model, const AdamW& optimizer,
                             const CheckpointParts& parts, const std::string& tokenizer_dir) {
  const fs::path out(output_dir);
  const fs::path tmp = out / fmt::format(".{}.tmp", checkpoint_name(step));
  const fs::path final_dir = out / checkpoint_name(step);
  remove_tree(tmp);
  make_dirs(tmp.string());
  model::save_pretrained(model, tmp.string());
  copy_tokenizer_files(tokenizer_dir, tmp.string());
  optimizer.save((tmp / "optimizer.safetensors").string());
  save_tensors((tmp / "rng_state.safetensors").string(), parts.rng, {{"format", "hfkit-rng"}, {"version", "1"}});
  write_file_atomic((tmp / "scheduler.json").string(), parts.scheduler.dump(2) + "\n");
  write_file_atomic((tmp / "trainer_state.json").string(), parts.trainer_state.dump(2) + "\n");
  fsync_dir(tmp.string());
  const std::map<std::string, std::uintmax_t> written = file_sizes(tmp.string());
  // A directory of this name without the marker is a leftover of a killed run; it never counted.
  remove_tree(final_dir);
  std::error_code ec;
  fs::rename(tmp, final_dir, ec);
  if (ec) throw Error(ErrorKind::kIo, fmt::format("cannot rename '{}' to '{}': {}", tmp.string(), final_dir.string(), ec.message()));
  fsync_dir(output_dir);
  // The marker vouches for the files: check they are all there as written (another writer or a
  // cleanup racing this one must not yield a "complete" checkpoint without weights).
  verify_files(final_dir.string(), written);
  write_file_atomic((final_dir / kCompleteMarker).string(), fmt::format("{}\n", step));
  return final_dir.string();
}

std::map<std::string, std::uintmax_t> file_sizes(const std::string& dir) {
  std::map<std::string, std::uintmax_t> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) out[e.path().filename().string()] = e.file_size(ec);
  if (ec) throw Error(ErrorKind::kIo, fmt::format("cannot list '{}': {}", dir, ec.message()));
  return out;
}

void verify_files(const std::string& dir, const std::map<std::string, std::uintmax_t>& written) {
  for (const char* name : kCheckpointFiles)
    if (!written.contains(name)) throw Error(ErrorKind::kIo, fmt::format("{}: {} was not written", dir, name));
  for (const auto& [name, size] : written) {
    std::error_code ec;
    const std::uintmax_t now = fs::file_size(fs::path(dir) / name, ec);
    if (ec || now != size)
      throw Error(ErrorKind::kIo, fmt::format("{}/{}: {} after writing {} bytes: not marking the checkpoint complete",
                                              dir, name, ec ? "missing" : fmt::format("{} bytes", now), size));
  }
}

CheckpointParts read_checkpoint_parts(const std::string& dir) {
  const fs::path d(dir);
  auto json_file = [&](const char* name) {
    const std::string path = (d / name).string();
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(read_file(path), nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::kDataErr, path + ": not a JSON object");
    return j;
  };
  CheckpointParts parts;
  parts.trainer_state = json_file("trainer_state.json");
  parts.scheduler = json_file("scheduler.json");
  TensorFile rng = load_tensors((d / "rng_state.safetensors").string());
  for (auto& [name, t] : rng.tensors) {
    if (t.scalar_type() != torch::kByte)
      throw Error(ErrorKind::kDataErr, Where{(d / "rng_state.safetensors").string(), 0, name}, "expected U8 bytes");
    parts.rng.emplace_back(name, t);
  }
  return parts;
}

std::vector<CheckpointRef> list_checkpoints(const std::string& output_dir) {
  std::vector<CheckpointRef> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(output_dir, ec)) {
    const auto step = checkpoint_step(e.path().filename().string());
    if (step && e.is_directory(ec) && fs::exists(e.path() / kCompleteMarker, ec))
      out.push_back(CheckpointRef{*step, e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::vector<CheckpointRef> checkpoints_to_delete(const std::vector<CheckpointRef>& complete, std::int64_t limit,
                                                 const std::string& keep_best) {
  std::vector<CheckpointRef> doomed;
  if (limit <= 0 || static_cast<std::int64_t>(complete.size()) <= limit) return doomed;
  auto excess = static_cast<std::int64_t>(complete.size()) - limit;
  // By name: the output directory may be spelled differently (relative, absolute) after a resume.
  auto same = [](const std::string& a, const std::string& b) {
    return !b.empty() && fs::path(a).filename() == fs::path(b).lexically_normal().filename();
  };
  for (std::size_t i = 0; i + 1 < complete.size() && excess > 0; ++i) {
    if (same(complete[i].path, keep_best)) continue;
    doomed.push_back(complete[i]);
    --excess;
  }
  return doomed;
}

void rotate_checkpoints(const std::string& output_dir, std::int64_t limit, const std::string& keep_best,
                        const std::function<bool(const std::string&)>& busy) {
  for (const CheckpointRef& c : checkpoints_to_delete(list_checkpoints(output_dir), limit, keep_best)) {
    if (busy && busy(c.path)) {
      log::debug("keeping {} until its upload is done", c.path);
      continue;
    }
    log::info("deleting {} (save_total_limit {})", c.path, limit);
    std::error_code ec;
    fs::remove(fs::path(c.path) / kCompleteMarker, ec);
    if (!ec) fsync_dir(c.path);
    remove_tree(c.path);
  }
}

void remove_incomplete_checkpoints(const std::string& output_dir) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return;
  std::vector<fs::path> stale;
  for (const fs::directory_entry& e : fs::directory_iterator(output_dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool temp = name.starts_with(std::string(".") + kCheckpointPrefix) && name.ends_with(".tmp");
    const bool unmarked = checkpoint_step(name) && !fs::exists(e.path() / kCompleteMarker, ec);
    if (e.is_directory(ec) && (temp || unmarked)) stale.push_back(e.path());
  }
  for (const fs::path& p : stale) {
    log::info("removing incomplete checkpoint {}", p.string());
    remove_tree(p);
  }
}

}  // namespace hf::train
