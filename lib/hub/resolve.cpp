// resolve(): the cache first, the Hub when the cache lacks the model (or HF_HUB_OFFLINE says no);
// resolve_model_arg(): the tools' rule for which arguments are names at all.
#include <fmt/format.h>

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "hub/hub.h"
#include "hub/internal.h"
#include "storage/storage.h"

namespace fs = std::filesystem;

namespace hf::hub {

std::string resolve(const RepoRef& ref, const Settings& settings) {
  const std::string name = ref.repo_id + "@" + ref.revision;
  if (settings.offline) {
    if (std::optional<std::string> dir = find_cached(ref, settings, /*complete=*/false)) {
      log::info("model {}: {} (offline)", name, *dir);
      return *dir;
    }
    throw Error(ErrorKind::kNoInput,
                fmt::format("{}: no such local directory, and not in the Hugging Face cache {} (HF_HUB_OFFLINE is "
                            "set, so nothing is downloaded)",
                            name, (fs::path(settings.cache_dir) / repo_folder_name(ref.repo_id)).string()));
  }
  if (std::optional<std::string> dir = find_cached(ref, settings, /*complete=*/true)) {
    log::info("model {}: {}", name, *dir);
    return *dir;
  }
  log::info("model {}: not a local directory; fetching it from {} into {}", name,
            storage::redact_url(settings.endpoint), settings.cache_dir);
  try {
    std::string dir = download(ref, settings);
    log::info("model {}: {}", name, dir);
    return dir;
  } catch (const Error& e) {
    // As huggingface_hub does when the Hub cannot be reached: what the cache has is used.
    if (e.kind() != ErrorKind::kUnavailable) throw;
    std::optional<std::string> dir = find_cached(ref, settings, /*complete=*/false);
    if (!dir) throw;
    log::warn("{}; using the cached snapshot {}", e.what(), *dir);
    return *dir;
  }
}

std::string resolve_model_arg(const std::string& arg) {
  std::error_code ec;
  if (fs::exists(arg, ec) || !looks_like_repo_ref(arg)) return arg;
  const std::size_t slash = arg.find('/');
  if (slash != std::string::npos && fs::is_directory(arg.substr(0, slash), ec)) return arg;  // REGISTRY/NAME
  return resolve(parse_repo_ref(arg), settings_from_env());
}

}  // namespace hf::hub
