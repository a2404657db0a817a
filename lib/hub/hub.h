// Models by name: "org/name[@revision]" resolved in the Hugging Face cache exactly as
// huggingface_hub lays it out (so a model downloaded with Python is used as is), and downloaded
// from the Hub (or an HF_ENDPOINT mirror) into that same layout when the cache lacks it. Only the
// files hfkit's tools read are fetched. No torch; HTTP through lib/storage's client.
// Cache layout (huggingface_hub file_download.py):
//   <cache>/models--<org>--<name>/refs/<revision>            the commit hash, no newline
//   <cache>/models--<org>--<name>/snapshots/<commit>/<file>  -> ../../blobs/<etag>
//   <cache>/models--<org>--<name>/blobs/<etag>               content; <etag>.incomplete while downloading
//   <cache>/.locks/models--<org>--<name>/<etag>.lock         flock held while a blob is downloaded
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hf::hub {

// A parsed "org/name[@revision]" (or "name[@revision]"); every part is checked before it is used.
struct RepoRef {
  std::string repo_id;   // "org/name" or "name"
  std::string revision;  // "main" when not given; a branch, tag, "refs/pr/N" or a 40-hex commit
};

// Where and how to resolve; settings_from_env() fills it as huggingface_hub reads its variables.
struct Settings {
  std::string cache_dir;  // HF_HUB_CACHE, else HF_HOME/hub, else $XDG_CACHE_HOME|~/.cache + /huggingface/hub
  std::string endpoint;   // HF_ENDPOINT without trailing '/', else https://huggingface.co
  std::string token;      // HF_TOKEN, else the token file (HF_TOKEN_PATH or HF_HOME/token); "" = none
  bool offline = false;   // HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is 1/ON/YES/TRUE
};

// Variable lookup; the default is hf::env (unset and empty are the same).
using EnvLookup = std::function<std::optional<std::string>(const char*)>;
// Reads the variables above (and the token file). Throws Error(kIo) when the token file exists but
// cannot be read.
Settings settings_from_env(const EnvLookup& lookup = {});

// True when `text` has the form of a repo id with an optional "@revision" and nothing that could
// escape a directory: [org/]name with ASCII letters, digits, '_', '-', '.', each part 1 to 96
// characters starting and ending with a letter or digit, no "--" or ".."; at most one '/'.
bool looks_like_repo_ref(std::string_view text);
// Parses `text`. Throws Error(kUsage) naming it when it is not a valid reference (e.g. "../x",
// "/abs/path", "a/b/c", a revision with ".." or a leading '.'), before any path is built from it.
RepoRef parse_repo_ref(std::string_view text);

// "models--org--name": the cache folder of a repo id (huggingface_hub's repo_folder_name).
std::string repo_folder_name(std::string_view repo_id);
// True for a full commit hash (40 lower-case hex digits): such a revision needs no refs/ lookup.
bool is_commit_hash(std::string_view revision);

// The snapshot directory already in the cache for `ref` (refs/<revision> followed, or the commit
// itself), or nullopt. `complete` = it holds config.json and the safetensors weights (the single
// file, or the index and every shard it names); otherwise any existing snapshot directory counts.
// Never touches the network; reads only.
std::optional<std::string> find_cached(const RepoRef& ref, const Settings& settings, bool complete);

// The files of a repository hfkit's tools read: config, weights and tokenizer files; weight shards
// are added from the index once it is downloaded.
bool is_wanted_file(std::string_view filename);

// The local snapshot directory for `ref`: from the cache when complete there, else downloaded into
// it (offline: any cached snapshot, else Error(kNoInput); endpoint unreachable: any cached
// snapshot, with a warning, as huggingface_hub falls back). Throws Error: kNoPerm for 401/403
// (private or gated, token missing or refused), kNoInput for 404 (repo, revision or file),
// kTempFail for 429/5xx/timeouts and interrupted transfers (a re-run resumes the .incomplete
// blob), kUnavailable when the endpoint cannot be reached, kDataErr for a corrupt download or an
// answer that is not the Hub's. Safe against other processes downloading the same repo (per-blob
// flock, atomic renames, refs/ written last). The token is sent as "Authorization: Bearer" to
// the endpoint only, never to a redirect on another host, and never logged.
std::string resolve(const RepoRef& ref, const Settings& settings);

// The tools' one call for a --model/--tokenizer argument: `arg` itself when it exists locally
// (a local directory of the same name always wins) or does not look like a repo reference, or
// when its first component is an existing local directory (a registry REGISTRY/NAME[@VERSION]);
// otherwise resolve(parse_repo_ref(arg), settings_from_env()).
std::string resolve_model_arg(const std::string& arg);

}  // namespace hf::hub
