// The model registry over lib/storage's backends (local path, file://, s3://). Publishing order is
// the protocol: model files, then <version>/manifest.json, then <name>/latest — so a version with
// a manifest is complete, and `latest` only ever names complete versions.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <ostream>
#include <unistd.h>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "serve/serve.h"

namespace hf::serve {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr std::size_t kMaxNameLength = 128;
// Training leftovers that are not part of the served model.
const std::vector<std::string> kNotPublished = {"checkpoint-*", ".complete", "*.tmp"};

// Names become path components and object keys: a strict alphabet, never "." or "..".
void check_name(std::string_view what, std::string_view s) {
  const bool ok = !s.empty() && s.size() <= kMaxNameLength && s != "." && s != ".." && s != kLatestFile &&
                  std::all_of(s.begin(), s.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                           c == '_' || c == '-';
                  });
  if (!ok)
    throw Error(ErrorKind::kUsage, fmt::format("{} '{}': expected 1-{} characters of A-Z a-z 0-9 . _ - (not 'latest')",
                                               what, s, kMaxNameLength));
}

std::string utc_now(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

Json read_json(const std::string& path) {
  try {
    return Json::parse(read_file(path));
  } catch (const Json::exception& e) {
    throw Error(ErrorKind::kDataErr, Where{path, 0, ""}, std::string("malformed JSON: ") + e.what());
  }
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// What the registry records about a model directory: every published file with size and hash.
Json file_list(const std::string& dir, const storage::PathFilter& filter) {
  std::vector<std::pair<std::string, std::uintmax_t>> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), dir).generic_string();
    if (filter.selected(rel)) files.emplace_back(rel, e.file_size());
  }
  std::sort(files.begin(), files.end());
  Json out = Json::array();
  for (const auto& [rel, size] : files)
    out.push_back({{"path", rel}, {"size", size}, {"sha256", sha256_file((fs::path(dir) / rel).string())}});
  return out;
}

Json lineage(const PublishOptions& o) {
  Json m;
  m["name"] = o.name;
  m["created"] = utc_now("%Y-%m-%dT%H:%M:%SZ");
  m["hfkit_version"] = o.hfkit_version;
  m["git_commit"] = o.git_commit;
  std::string parent = o.parent;
  const std::string config = (fs::path(o.model_dir) / "hfkit_config.yaml").string();
  if (fs::exists(config)) {
    // hf-train saves its resolved configuration beside the model: the training config, and the
    // model it started from.
    const std::string text = read_file(config);
    m["training_config"] = text;
    if (parent.empty()) {
      try {
        const YAML::Node y = YAML::Load(text);
        if (y["model"] && y["model"].IsScalar()) parent = y["model"].as<std::string>();
      } catch (const YAML::Exception& e) {
        throw Error(ErrorKind::kConfig, Where{config, 0, ""}, std::string("malformed YAML: ") + e.what());
      }
    }
  } else {
    m["training_config"] = nullptr;
  }
  m["parent_model"] = parent.empty() ? Json(nullptr) : Json(parent);
  if (!o.dataset_dir.empty()) {
    const Json d = read_json((fs::path(o.dataset_dir) / "dataset.json").string());
    m["data_sha256"] = d.value("source_sha256", "");
    m["tokenizer_sha256"] = d.value("tokenizer_sha256", "");
    m["dataset"] = d;
  } else {
    m["data_sha256"] = nullptr;
    m["tokenizer_sha256"] = nullptr;
  }
  m["eval_metrics"] = o.metrics.empty() ? Json(nullptr) : read_json(o.metrics);
  return m;
}

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') return std::string(x) + "/hfkit/models";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') return std::string(h) + "/.cache/hfkit/models";
  return "/tmp/hfkit-models";
}

}  // namespace

Outcome publish(const PublishOptions& o, std::ostream& out) {
  if (o.registry.empty()) throw Error(ErrorKind::kUsage, "--registry is required");
  check_name("--name", o.name);
  const std::string version = o.version.empty() ? utc_now("%Y%m%d-%H%M%S") : o.version;
  check_name("--version", version);
  for (const char* f : {"config.json", "model.safetensors"})
    if (!fs::exists(fs::path(o.model_dir) / f))
      throw Error(ErrorKind::kNoInput, fmt::format("{}: no {}: not a model directory", o.model_dir, f));
  const storage::Url root = storage::parse_url(o.registry);
  auto backend = storage::open_backend(root, o.storage);
  const std::string base = o.name + "/" + version + "/";
  if (backend->head(base + kManifestFile))
    throw Error(ErrorKind::kCantCreate,
                fmt::format("{}/{}@{}: already published (versions are immutable)", o.registry, o.name, version));

  Json manifest = lineage(o);
  manifest["version"] = version;
  storage::SyncOptions sync;
  sync.manifest_path = "none";
  sync.delete_extra = true;  // leftovers of an earlier failed publish of this version
  sync.filter.exclude = kNotPublished;
  sync.filter.exclude.push_back(kManifestFile);
  manifest["files"] = file_list(o.model_dir, sync.filter);
  storage::push(o.model_dir, root.child(o.name + "/" + version), o.storage, sync);
  backend->put_bytes(manifest.dump(2) + "\n", base + kManifestFile);
  backend->put_bytes(version + "\n", o.name + "/" + kLatestFile);
  log::info("published {} files as {}/{}@{}", manifest["files"].size(), o.registry, o.name, version);
  out << o.registry << "/" << o.name << "@" << version << "\n";
  return Outcome::kOk;
}

std::optional<ModelRef> parse_model_ref(std::string_view text, const storage::Options& storage) {
  std::string s(text);
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  const std::size_t slash = s.rfind('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  const bool local = storage::parse_url(s).scheme == storage::Scheme::kLocal;
  if (local && fs::exists(fs::path(s) / "config.json")) return std::nullopt;  // a model directory
  ModelRef ref;
  ref.registry = s.substr(0, slash);
  std::string last = s.substr(slash + 1);
  const std::size_t at = last.rfind('@');
  const bool explicit_ref = at != std::string::npos;
  ref.name = explicit_ref ? last.substr(0, at) : last;
  ref.version = explicit_ref ? last.substr(at + 1) : kLatestFile;
  if (explicit_ref) {
    check_name("model name", ref.name);
    if (ref.version != kLatestFile) check_name("model version", ref.version);
  } else if (local && !fs::exists(fs::path(s) / kLatestFile)) {
    return std::nullopt;  // not a registry entry either: the Predictor reports the missing model
  }
  auto backend = storage::open_backend(storage::parse_url(ref.registry), storage);
  if (ref.version == kLatestFile) {
    const std::string key = ref.name + "/" + kLatestFile;
    if (!backend->head(key))
      throw Error(ErrorKind::kNoInput, fmt::format("{}/{}: no published version ({} missing)", ref.registry, ref.name, key));
    ref.version = trimmed(backend->get_bytes(key));
    check_name(fmt::format("{}/{} names version", ref.registry, key), ref.version);
  }
  if (!backend->head(ref.name + "/" + ref.version + "/" + kManifestFile))
    throw Error(ErrorKind::kNoInput, fmt::format("{}/{}@{}: no such published version", ref.registry, ref.name, ref.version));
  return ref;
}

std::string resolve_model(const std::string& model, const std::string& cache_dir, const storage::Options& storage) {
  const std::optional<ModelRef> ref = parse_model_ref(model, storage);
  if (!ref) return model;
  const storage::Url root = storage::parse_url(ref->registry);
  const std::string rel = ref->name + "/" + ref->version;
  if (root.scheme == storage::Scheme::kLocal) {
    log::info("model {}: {}", model, root.child(rel).str());
    return root.child(rel).str();
  }
  // Versions are immutable, so a complete cached copy (its manifest present) is that version.
  const fs::path local = fs::path(cache_dir.empty() ? default_cache_dir() : cache_dir) /
                         sha256_hex(root.str()).substr(0, 16) / ref->name / ref->version;
  if (fs::exists(local / kManifestFile)) {
    log::info("model {}: cached in {}", model, local.string());
    return local.string();
  }
  make_dirs(local.parent_path().string());
  const fs::path tmp = local.parent_path() / fmt::format(".{}.tmp-{}", ref->version, ::getpid());
  fs::remove_all(tmp);
  storage::SyncOptions sync;
  sync.manifest_path = "none";
  try {
    storage::pull(root.child(rel), tmp.string(), storage, sync);
    std::error_code ec;
    fs::rename(tmp, local, ec);
    // Another process may have pulled the same version meanwhile: theirs is as good as ours.
    if (ec && !fs::exists(local / kManifestFile))
      throw Error(ErrorKind::kCantCreate, fmt::format("cannot create {}: {}", local.string(), ec.message()));
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  fs::remove_all(tmp);
  log::info("model {}: pulled into {}", model, local.string());
  return local.string();
}

}  // namespace hf::serve
