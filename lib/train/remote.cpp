// --sync-to for hf-train: checkpoints handed to lib/storage's background Uploader as they are
// saved, the newest complete remote checkpoint fetched for --resume auto, the final model pushed.
// lib/storage does the transfers (marker last, rotation, retries); this file only decides when.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "train/internal.h"

namespace hf::train {
namespace {

namespace fs = std::filesystem;

// Failed upload attempts in a row (each already retried per request) after which the end of a run
// stops waiting for the store.
constexpr std::uint64_t kDrainFailures = 2;
// Whole-push attempts of the final model (each already retried per request); the later ones only
// send what is still missing.
constexpr int kFinalPushAttempts = 3;
// Longest wait for queued uploads; uploads either progress or fail (read timeout), so this only
// bounds a pathological store.
constexpr std::chrono::hours kDrainTimeout{24};

storage::Url parse_sync_to(const std::string& text) {
  try {
    return storage::parse_url(text);
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("--sync-to {}: {}", text, e.what()));
  }
}

}  // namespace

RemoteSync::RemoteSync(const TrainOptions& options)
    : options_(options), url_(parse_sync_to(options.sync_to)), storage_(options.storage) {
  storage_.progress = false;
  storage::UploaderOptions up;
  up.url = url_;
  up.storage = storage_;
  up.layout = layout_;
  if (options.save_total_limit > 0)
    up.keep = keep_policy(options.save_total_limit, [this] {
      std::lock_guard<std::mutex> lock(best_mu_);
      return best_;
    });
  uploader_ = std::make_unique<storage::Uploader>(std::move(up));
  log::info("checkpoints and the final model are synced to {}", url_.str());
}

RemoteSync::~RemoteSync() = default;

bool RemoteSync::fetch_newer(std::int64_t local_newest) {
  try {
    const auto remote = storage::find_latest_complete_checkpoint(url_, storage_, layout_);
    if (!remote) {
      log::info("no complete checkpoint in {}", url_.str());
      return false;
    }
    if (remote->step <= local_newest) {
      log::info("the local checkpoint-{} is not older than {}: using the local one", local_newest, remote->url.str());
      return false;
    }
    log::info("downloading {} (step {}) into {}", remote->url.str(), remote->step, options_.output_dir);
    storage::download_checkpoint(*remote, options_.output_dir, storage_, layout_);
    return true;
  } catch (const Error& e) {
    if (local_newest < 0)
      throw Error(e.kind(), fmt::format("--resume auto: cannot read checkpoints in {} and none is local: {}",
                                        url_.str(), e.what()));
    log::warn("cannot read checkpoints in {}; resuming from the local checkpoint-{}: {}", url_.str(), local_newest,
              e.what());
    return false;
  }
}

void RemoteSync::refuse_other_runs() {
  std::optional<storage::RemoteCheckpoint> newest;
  try {
    newest = storage::find_latest_complete_checkpoint(url_, storage_, layout_);
  } catch (const Error& e) {
    log::warn("cannot list checkpoints in {}: {}", url_.str(), e.what());
    return;
  }
  if (newest)
    throw Error(ErrorKind::kUsage,
                fmt::format("{} already holds checkpoints of a run (newest {}): pass --resume auto to continue it, "
                            "or give a new --sync-to URL (or empty it: hf-sync rm --recursive {})",
                            url_.str(), newest->url.str(), url_.str()));
}

bool RemoteSync::ensure_local(const std::string& name) {
  const fs::path local = fs::path(options_.output_dir) / name;
  if (fs::exists(local / kCompleteMarker)) return true;
  try {
    for (const storage::RemoteCheckpoint& c : storage::list_complete_checkpoints(url_, storage_, layout_)) {
      if (c.name != name) continue;
      log::info("downloading {} into {}", c.url.str(), options_.output_dir);
      storage::download_checkpoint(c, options_.output_dir, storage_, layout_);
      return true;
    }
  } catch (const Error& e) {
    log::warn("cannot fetch {} from {}: {}", name, url_.str(), e.what());
  }
  return false;
}

void RemoteSync::saved(const std::string& dir, const std::string& best) {
  if (!best.empty()) {
    std::lock_guard<std::mutex> lock(best_mu_);
    best_ = fs::path(best).filename().string();
  }
  uploader_->enqueue(dir);
}

bool RemoteSync::busy(const std::string& dir) const { return uploader_->in_use(dir); }

bool RemoteSync::finish_uploads() {
  const auto t0 = std::chrono::steady_clock::now();
  if (uploader_->drain(kDrainTimeout, kDrainFailures)) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= 0.5) log::info("waited {:.1f} s for checkpoint uploads to {}", s, url_.str());
    return true;
  }
  const storage::UploaderStatus st = uploader_->status();
  log::warn("{} checkpoint upload(s) to {} not done, giving up: {}", st.pending, url_.str(), st.last_error);
  return false;
}

void RemoteSync::push_final() {
  storage::SyncOptions sync;
  sync.manifest_path = "none";
  // Checkpoints have their own uploads; hidden entries are temp dirs and markers.
  sync.filter.exclude = {std::string(kCheckpointPrefix) + "*", ".*"};
  for (int attempt = 1;; ++attempt) {
    try {
      const storage::SyncSummary s = storage::push(options_.output_dir, url_, storage_, sync);
      log::info("final model pushed to {} ({} file(s) sent, {} unchanged)", url_.str(), s.files_transferred,
                s.files_unchanged);
      return;
    } catch (const Error& e) {
      if (attempt >= kFinalPushAttempts)
        throw Error(ErrorKind::kTempFail,
                    fmt::format("final model not pushed to {} after {} attempts ({}); the local output in {} is "
                                "complete: rerun with --resume auto to push it",
                                url_.str(), attempt, e.what(), options_.output_dir));
      log::warn("pushing the final model to {} failed, retrying in {} s: {}", url_.str(), attempt, e.what());
      std::this_thread::sleep_for(std::chrono::seconds(attempt));
    }
  }
}

}  // namespace hf::train
