// Reading the Hugging Face cache: refs, snapshots, which files a model needs, and the parsing of
// the Hub's answers that decide cache paths (API JSON, ETags, index shards). No network here.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "hub/hub.h"
#include "hub/internal.h"

namespace fs = std::filesystem;

namespace hf::hub {
namespace {

// Files hfkit's tools read from a model directory (lib/model, lib/tokenizer, lib/train's copy of
// the tokenizer files); shards come from the index.
constexpr const char* kWantedFiles[] = {
    "config.json",          "model.safetensors",       kIndexFile,          "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json",           "merges.txt",              "spm.model",         "sentencepiece.bpe.model",
    "tokenizer.model"};
constexpr std::size_t kMaxEtag = 128;
constexpr std::size_t kMaxShards = 100000;  // bounds a hostile index; real ones have < 1000

bool exists_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);  // follows the snapshot symlink to its blob
}

}  // namespace

RepoPaths::RepoPaths(const Settings& settings, const RepoRef& ref)
    : storage((fs::path(settings.cache_dir) / repo_folder_name(ref.repo_id)).string()),
      locks((fs::path(settings.cache_dir) / ".locks" / repo_folder_name(ref.repo_id)).string()) {}

bool is_wanted_file(std::string_view filename) {
  return std::any_of(std::begin(kWantedFiles), std::end(kWantedFiles), [&](const char* w) { return filename == w; });
}

std::optional<std::string> cached_commit(const RepoPaths& paths, const RepoRef& ref) {
  if (is_commit_hash(ref.revision)) return ref.revision;
  const std::string file = paths.ref_file(ref.revision);
  if (!exists_file(file)) return std::nullopt;
  std::string commit = read_file(file);
  while (!commit.empty() && (commit.back() == '\n' || commit.back() == '\r' || commit.back() == ' ')) commit.pop_back();
  if (!is_commit_hash(commit))
    throw Error(ErrorKind::kDataErr, fmt::format("{}: expected a 40-hex commit hash", file));
  return commit;
}

std::vector<std::string> index_shards(std::string_view index_json, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(index_json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kDataErr, fmt::format("{}: {}", where, e.what()));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(ErrorKind::kDataErr, Where{where, 0, "weight_map"}, "expected an object");
  std::vector<std::string> shards;
  for (const auto& [tensor, file] : j["weight_map"].items()) {
    if (!file.is_string() || !is_safe_name(file.get<std::string>()))
      throw Error(ErrorKind::kDataErr, Where{where, 0, "weight_map." + tensor},
                  "expected one file name of [A-Za-z0-9_.-]");
    const std::string name = file.get<std::string>();
    if (std::find(shards.begin(), shards.end(), name) == shards.end()) shards.push_back(name);
    if (shards.size() > kMaxShards) throw Error(ErrorKind::kDataErr, Where{where, 0, "weight_map"}, "too many shards");
  }
  return shards;
}

bool snapshot_complete(const std::string& dir) {
  const fs::path d(dir);
  if (!exists_file(d / "config.json")) return false;
  if (exists_file(d / "model.safetensors")) return true;
  if (!exists_file(d / kIndexFile)) return false;
  const std::vector<std::string> shards = index_shards(read_file((d / kIndexFile).string()), (d / kIndexFile).string());
  return std::all_of(shards.begin(), shards.end(), [&](const std::string& s) { return exists_file(d / s); });
}

std::optional<std::string> find_cached(const RepoRef& ref, const Settings& settings, bool complete) {
  const RepoPaths paths(settings, ref);
  const std::optional<std::string> commit = cached_commit(paths, ref);
  if (!commit) return std::nullopt;
  const std::string dir = paths.snapshot(*commit);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  if (complete && !snapshot_complete(dir)) return std::nullopt;
  return dir;
}

std::string normalize_etag(std::string_view etag) {
  if (etag.substr(0, 2) == "W/") etag.remove_prefix(2);
  while (!etag.empty() && etag.front() == '"') etag.remove_prefix(1);
  while (!etag.empty() && etag.back() == '"') etag.remove_suffix(1);
  return std::string(etag);
}

bool is_safe_etag(std::string_view etag) {
  if (etag.empty() || etag.size() > kMaxEtag) return false;
  return std::all_of(etag.begin(), etag.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

RepoInfo parse_repo_info(std::string_view json, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kDataErr, fmt::format("{}: not JSON: {}", where, e.what()));
  }
  RepoInfo info;
  if (!j.is_object() || !j.contains("sha") || !j["sha"].is_string() || !is_commit_hash(j["sha"].get<std::string>()))
    throw Error(ErrorKind::kDataErr, Where{where, 0, "sha"}, "expected a 40-hex commit hash");
  info.sha = j["sha"].get<std::string>();
  if (!j.contains("siblings") || !j["siblings"].is_array())
    throw Error(ErrorKind::kDataErr, Where{where, 0, "siblings"}, "expected a list");
  for (const auto& s : j["siblings"]) {
    if (s.is_object() && s.contains("rfilename") && s["rfilename"].is_string())
      info.files.push_back(s["rfilename"].get<std::string>());
  }
  return info;
}

}  // namespace hf::hub
