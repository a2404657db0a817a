// Internals of lib/hub shared by its files: the cache paths of one repo and the download steps.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/hub.h"

namespace hf::hub {

inline constexpr std::size_t kCommitHashLength = 40;
inline constexpr std::size_t kSha256HexLength = 64;
inline constexpr const char* kIndexFile = "model.safetensors.index.json";

// The cache folders of one repo (see hub.h for the layout).
struct RepoPaths {
  std::string storage;  // <cache>/models--org--name
  std::string locks;    // <cache>/.locks/models--org--name

  RepoPaths(const Settings& settings, const RepoRef& ref);
  std::string ref_file(std::string_view revision) const { return storage + "/refs/" + std::string(revision); }
  std::string snapshot(std::string_view commit) const { return storage + "/snapshots/" + std::string(commit); }
  std::string blob(std::string_view etag) const { return storage + "/blobs/" + std::string(etag); }
};

// The commit refs/<revision> names (the revision itself for a commit hash), or nullopt.
std::optional<std::string> cached_commit(const RepoPaths& paths, const RepoRef& ref);
// The shard file names a safetensors index names (its weight_map values, deduplicated, in
// order). Throws Error(kDataErr) naming `where` for bad JSON or a shard name that is not one safe
// file name.
std::vector<std::string> index_shards(std::string_view index_json, const std::string& where);
// True when `dir` holds config.json and the weights (single file, or the index and its shards).
bool snapshot_complete(const std::string& dir);

// ETag header value as a file name: W/"x" and "x" -> x (huggingface_hub's _normalize_etag).
std::string normalize_etag(std::string_view etag);
// True when `etag` may become a blob file name: 1..128 of [A-Za-z0-9_-].
bool is_safe_etag(std::string_view etag);

// What GET {endpoint}/api/models/{repo}/revision/{rev} answers that we use.
struct RepoInfo {
  std::string sha;                  // the commit the revision names
  std::vector<std::string> files;   // siblings[].rfilename
};
// Parses the API answer. Throws Error(kDataErr) naming `where` when it is not JSON with a 40-hex
// "sha" and a "siblings" list.
RepoInfo parse_repo_info(std::string_view json, const std::string& where);

// Downloads `ref` into the cache (the network half of resolve()); returns the snapshot directory.
std::string download(const RepoRef& ref, const Settings& settings);

}  // namespace hf::hub
