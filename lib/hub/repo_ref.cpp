// Repo references and settings: the checks that run before any path is built from a name, and
// the environment variables huggingface_hub reads (constants.py), with the same precedence.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "hub/hub.h"
#include "hub/internal.h"

namespace fs = std::filesystem;

namespace hf::hub {
namespace {

constexpr std::size_t kMaxRepoPart = 96;       // huggingface_hub's REPO_ID_REGEX bound per part
constexpr std::size_t kMaxRevision = 255;      // git allows longer refs; nothing real comes close
constexpr const char* kDefaultEndpoint = "https://huggingface.co";
constexpr const char* kDefaultRevision = "main";

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// One part of a repo id: [A-Za-z0-9_.-]{1,96}, first and last a letter, digit or '_' (the regex's
// word boundaries), so "." / ".." / "-x" never pass.
bool is_repo_part(std::string_view s) {
  if (s.empty() || s.size() > kMaxRepoPart) return false;
  auto word = [](char c) { return is_alnum(c) || c == '_'; };
  if (!word(s.front()) || !word(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return word(c) || c == '-' || c == '.'; });
}

// A branch, tag or "refs/pr/N": '/'-separated parts each a safe path component (core's rule:
// [A-Za-z0-9_.-], no leading '.'), as refs/<revision> becomes a path in the cache.
bool is_revision(std::string_view s) {
  if (s.empty() || s.size() > kMaxRevision) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = s.find('/', start);
    const std::string_view part = s.substr(start, slash == std::string_view::npos ? s.npos : slash - start);
    if (!is_safe_name(part)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

std::optional<RepoRef> try_parse(std::string_view text) {
  RepoRef ref;
  std::string_view id = text;
  const std::size_t at = text.find('@');
  if (at != std::string_view::npos) {
    id = text.substr(0, at);
    const std::string_view rev = text.substr(at + 1);
    if (!is_revision(rev)) return std::nullopt;
    ref.revision = std::string(rev);
  } else {
    ref.revision = kDefaultRevision;
  }
  if (id.find("--") != std::string_view::npos || id.find("..") != std::string_view::npos) return std::nullopt;
  const std::size_t slash = id.find('/');
  if (slash == std::string_view::npos) {
    if (!is_repo_part(id)) return std::nullopt;
  } else if (!is_repo_part(id.substr(0, slash)) || !is_repo_part(id.substr(slash + 1))) {
    return std::nullopt;
  }
  ref.repo_id = std::string(id);
  return ref;
}

bool is_true(const std::optional<std::string>& v) {
  if (!v) return false;
  std::string u = *v;
  std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return u == "1" || u == "ON" || u == "YES" || u == "TRUE";
}

// "~" and "~/..." as os.path.expanduser does with $HOME.
std::string expand_user(const std::string& path, const EnvLookup& lookup) {
  if (path.empty() || path[0] != '~' || (path.size() > 1 && path[1] != '/')) return path;
  const std::optional<std::string> home = lookup("HOME");
  return home ? *home + path.substr(1) : path;
}

std::string strip(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && space(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && space(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

bool looks_like_repo_ref(std::string_view text) { return try_parse(text).has_value(); }

RepoRef parse_repo_ref(std::string_view text) {
  std::optional<RepoRef> ref = try_parse(text);
  if (!ref)
    throw Error(ErrorKind::kUsage,
                fmt::format("'{}': not a Hugging Face model reference (expected org/name[@revision]: letters, "
                            "digits, '_', '-', '.', no '..' or '--')",
                            text));
  return *ref;
}

std::string repo_folder_name(std::string_view repo_id) {
  std::string out = "models";
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = repo_id.find('/', start);
    out += "--";
    out += repo_id.substr(start, slash == std::string_view::npos ? repo_id.npos : slash - start);
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

bool is_commit_hash(std::string_view revision) {
  return revision.size() == kCommitHashLength &&
         std::all_of(revision.begin(), revision.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Settings settings_from_env(const EnvLookup& lookup_in) {
  const EnvLookup lookup = lookup_in ? lookup_in : EnvLookup([](const char* n) { return env(n); });
  Settings s;
  const std::optional<std::string> xdg = lookup("XDG_CACHE_HOME");
  const std::string hf_home =
      expand_user(lookup("HF_HOME").value_or((fs::path(xdg.value_or("~/.cache")) / "huggingface").string()), lookup);
  // HUGGINGFACE_HUB_CACHE is the legacy name huggingface_hub still reads after HF_HUB_CACHE.
  std::optional<std::string> cache = lookup("HF_HUB_CACHE");
  if (!cache) cache = lookup("HUGGINGFACE_HUB_CACHE");
  s.cache_dir = cache ? expand_user(*cache, lookup) : (fs::path(hf_home) / "hub").string();
  s.endpoint = lookup("HF_ENDPOINT").value_or(kDefaultEndpoint);
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  s.offline = is_true(lookup("HF_HUB_OFFLINE")) || is_true(lookup("TRANSFORMERS_OFFLINE"));
  // HUGGING_FACE_HUB_TOKEN: the older name, read after HF_TOKEN; then `hf auth login`'s file.
  std::optional<std::string> token = lookup("HF_TOKEN");
  if (!token) token = lookup("HUGGING_FACE_HUB_TOKEN");
  if (!token) {
    const std::string file = expand_user(lookup("HF_TOKEN_PATH").value_or((fs::path(hf_home) / "token").string()), lookup);
    std::error_code ec;
    if (fs::is_regular_file(file, ec)) token = read_file(file);
  }
  s.token = strip(token.value_or(""));
  return s;
}

}  // namespace hf::hub
