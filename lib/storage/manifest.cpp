// Sync manifest persistence (see manifest.h).
#include "storage/manifest.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"

namespace hf::storage {

std::string Manifest::default_path(const std::string& local_dir, const std::string& url) {
  std::string cache = env("XDG_CACHE_HOME").value_or(env("HOME").value_or("/tmp") + "/.cache");
  std::error_code ec;
  std::string abs = std::filesystem::weakly_canonical(std::filesystem::absolute(local_dir), ec).string();
  if (ec) abs = local_dir;
  return cache + "/hfkit/sync/" + sha256_hex(abs + '\n' + url).substr(0, 32) + ".json";
}

Manifest Manifest::load(const std::string& path, const std::string& local_dir, const std::string& url) {
  Manifest m;
  try {
    m = from_json(read_file(path));
    if (m.url_ != url) m.entries_.clear();  // a hash collision or a hand-edited file: start over
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kNoInput) log::warn("ignoring sync manifest {}: {}", path, e.what());
    m = Manifest();
  }
  m.path_ = path;
  m.local_ = local_dir;
  m.url_ = url;
  return m;
}

const ManifestEntry* Manifest::find(const std::string& rel) const {
  auto it = entries_.find(rel);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string Manifest::to_json() const {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [rel, e] : entries_)
    files[rel] = {{"size", e.size}, {"mtime_ns", e.mtime_ns}, {"sha256", e.sha256}, {"etag", e.etag}};
  nlohmann::json j = {{"version", kVersion}, {"local", local_}, {"url", url_}, {"files", files}};
  return j.dump(0) + "\n";
}

Manifest Manifest::from_json(const std::string& text) {
  Manifest m;
  try {
    auto j = nlohmann::json::parse(text);
    if (j.value("version", 0) != kVersion) throw Error(ErrorKind::kDataErr, "unsupported manifest version");
    m.local_ = j.value("local", "");
    m.url_ = j.value("url", "");
    for (const auto& [rel, e] : j.at("files").items()) {
      ManifestEntry entry;
      entry.size = e.at("size").get<std::uint64_t>();
      entry.mtime_ns = e.at("mtime_ns").get<std::int64_t>();
      entry.sha256 = e.at("sha256").get<std::string>();
      entry.etag = e.at("etag").get<std::string>();
      m.entries_[rel] = std::move(entry);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kDataErr, std::string("malformed manifest: ") + e.what());
  }
  return m;
}

void Manifest::save() const {
  make_dirs(std::filesystem::path(path_).parent_path().string());
  write_file_atomic(path_, to_json());
}

}  // namespace hf::storage
