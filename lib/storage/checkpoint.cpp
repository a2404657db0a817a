// Remote checkpoints for hf-train: upload with the completeness marker last, find the newest
// complete one, download it atomically, rotate old ones, and the background Uploader (bounded
// queue, newest wins, retries with back-off while training goes on).
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "storage/backends.h"
#include "storage/storage.h"

namespace hf::storage {
namespace {

namespace fs = std::filesystem;

struct Candidate {
  std::string name;
  std::int64_t step;
};

std::vector<Candidate> checkpoint_dirs(Backend& backend, const CheckpointLayout& layout) {
  std::vector<Candidate> out;
  for (const std::string& p : backend.list_dir("").prefixes) {
    std::string name = p;
    if (!name.empty() && name.back() == '/') name.pop_back();
    if (const auto step = layout.step_of(name)) out.push_back({name, *step});
  }
  std::sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.step < b.step; });
  return out;
}

void delete_checkpoint(Backend& backend, const std::string& name, const CheckpointLayout& ck) {
  // Marker first: from then on readers treat the rest as garbage, never as a checkpoint.
  backend.remove({name + "/" + ck.marker});
  std::vector<std::string> keys;
  for (const auto& o : backend.list(name + "/")) keys.push_back(o.key);  // keys are relative to the root
  backend.remove(keys);
}

std::string base_name(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return fs::path(d).filename().string();
}

}  // namespace

std::vector<RemoteCheckpoint> list_complete_checkpoints(const Url& root, const Options& options,
                                                        const CheckpointLayout& ck) {
  std::unique_ptr<Backend> backend = open_backend(root, options);
  std::vector<RemoteCheckpoint> out;
  for (const Candidate& c : checkpoint_dirs(*backend, ck))
    if (backend->head(c.name + "/" + ck.marker)) out.push_back({c.name, c.step, root.child(c.name)});
  return out;
}

std::optional<RemoteCheckpoint> find_latest_complete_checkpoint(const Url& root, const Options& options,
                                                                const CheckpointLayout& ck) {
  std::unique_ptr<Backend> backend = open_backend(root, options);
  std::vector<Candidate> dirs = checkpoint_dirs(*backend, ck);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it)
    if (backend->head(it->name + "/" + ck.marker)) return RemoteCheckpoint{it->name, it->step, root.child(it->name)};
  return std::nullopt;
}

std::string download_checkpoint(const RemoteCheckpoint& ckpt, const std::string& local_parent,
                                const Options& options, const CheckpointLayout& ck) {
  fs::create_directories(local_parent);
  std::string target = local_parent + "/" + ckpt.name;
  std::string temp = local_parent + "/." + ckpt.name + ".partial";
  std::error_code ec;
  fs::remove_all(temp, ec);  // leftovers of an interrupted download
  try {
    SyncOptions files;
    files.manifest_path = "none";
    files.filter.exclude = {ck.marker};
    pull(ckpt.url, temp, options, files);
    // The marker last, and only if it is still there: a checkpoint rotated away meanwhile fails.
    SyncOptions marker;
    marker.manifest_path = "none";
    marker.filter.include = {ck.marker};
    SyncSummary s = pull(ckpt.url, temp, options, marker);
    if (!fs::exists(temp + "/" + ck.marker))
      throw Error(ErrorKind::kNoInput, ckpt.url.str() + ": completeness marker vanished during the download");
    (void)s;
    if (fs::exists(target)) {
      std::string old = local_parent + "/." + ckpt.name + ".old";
      fs::remove_all(old, ec);
      fs::rename(target, old);
      fs::rename(temp, target);
      fs::remove_all(old, ec);
    } else {
      fs::rename(temp, target);
    }
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(temp, ec);
    throw Error(ErrorKind::kCantCreate, std::string("install checkpoint: ") + e.what());
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
  return target;
}

void upload_checkpoint(const std::string& local_dir, const Url& dest, const Options& options,
                       const CheckpointLayout& ck) {
  std::string marker_path = local_dir + "/" + ck.marker;
  struct stat st{};
  if (::stat(marker_path.c_str(), &st) != 0)
    throw Error(ErrorKind::kNoInput, "'" + local_dir + "' has no completeness marker '" + ck.marker + "'");
  std::unique_ptr<Backend> backend = open_backend(dest, options);
  // A stale marker (same step uploaded before) must go before any file changes.
  if (backend->head(ck.marker)) backend->remove({ck.marker});
  SyncOptions files;
  files.delete_extra = true;
  files.manifest_path = "none";
  files.filter.exclude = {ck.marker};
  push(local_dir, dest, options, files);
  check_cancel(options.cancel);
  backend->put_file(marker_path, ck.marker, "");
}

void rotate_checkpoints(const Url& root, const KeepPolicy& keep, const Options& options,
                        const CheckpointLayout& ck) {
  if (!keep) return;
  std::unique_ptr<Backend> backend = open_backend(root, options);
  std::vector<Candidate> dirs = checkpoint_dirs(*backend, ck);
  std::vector<RemoteCheckpoint> complete;
  std::vector<Candidate> incomplete;
  for (const Candidate& c : dirs) {
    if (backend->head(c.name + "/" + ck.marker))
      complete.push_back({c.name, c.step, root.child(c.name)});
    else
      incomplete.push_back(c);
  }
  if (complete.empty()) return;
  const std::vector<std::string> kept = keep(complete);
  auto protected_name = [&](const std::string& n) { return std::find(kept.begin(), kept.end(), n) != kept.end(); };
  for (const RemoteCheckpoint& c : complete) {
    if (protected_name(c.name)) continue;
    log::info("rotating out remote checkpoint {}", c.url.str());
    delete_checkpoint(*backend, c.name, ck);
  }
  // Incomplete ones older than the newest complete are abandoned uploads; newer ones may be in flight.
  const std::int64_t newest = complete.back().step;
  for (const Candidate& c : incomplete)
    if (c.step < newest && !protected_name(c.name)) delete_checkpoint(*backend, c.name, ck);
}

// ---------------------------------------------------------------------------------------------

struct Uploader::State {
  UploaderOptions options;
  mutable std::mutex mu;
  std::condition_variable cv;       // wakes the worker
  std::condition_variable idle_cv;  // wakes drain()
  std::deque<std::string> pending;  // oldest first
  std::string active;
  bool stop = false;
  bool draining = false;
  std::atomic<bool> cancel{false};
  UploaderStatus status;
  std::thread thread;

  void run();
};

void Uploader::State::run() {
  double delay = 1.0;
  std::unique_lock<std::mutex> lock(mu);
  while (true) {
    cv.wait(lock, [&] { return stop || !pending.empty(); });
    if (stop) return;
    active = pending.front();
    pending.pop_front();
    lock.unlock();

    std::string error;
    try {
      Options o = options.storage;
      o.cancel = &cancel;
      o.progress = false;
      upload_checkpoint(active, options.url.child(base_name(active)), o, options.layout);
      try {
        rotate_checkpoints(options.url, options.keep, o, options.layout);
      } catch (const Error& e) {
        log::warn("remote checkpoint rotation failed: {}", e.what());
      }
    } catch (const std::exception& e) {
      error = e.what();
    }

    lock.lock();
    if (error.empty()) {
      ++status.uploaded;
      status.last_uploaded = active;
      status.last_error.clear();
      log::info("checkpoint {} uploaded to {}", active, options.url.child(base_name(active)).str());
      delay = 1.0;
    } else if (!stop) {
      ++status.failed_attempts;
      status.last_error = error;
      if (!pending.empty()) {
        ++status.dropped;  // a newer checkpoint is waiting: it supersedes this one
        log::warn("checkpoint upload of {} failed, superseded by a newer one: {}", active, error);
      } else {
        // A drain() starting during a long back-off cuts it short: the end of a run retries at once.
        const bool was_draining = draining;
        const double wait = was_draining ? std::min(delay, 1.0) : delay;
        log::warn("checkpoint upload of {} failed, retrying in {:.0f} s: {}", active, wait, error);
        pending.push_front(active);
        active.clear();
        idle_cv.notify_all();
        cv.wait_for(lock, std::chrono::duration<double>(wait),
                    [&] { return stop || pending.size() > 1 || (draining && !was_draining); });
        delay = std::min(delay * 2, options.retry_delay_max_s);
        if (pending.size() > 1) {  // newer arrived while waiting: the failed one is dropped
          pending.pop_front();
          ++status.dropped;
        }
        continue;
      }
    }
    active.clear();
    idle_cv.notify_all();
  }
}

Uploader::Uploader(UploaderOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  if (state_->options.max_pending == 0) state_->options.max_pending = 1;
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

Uploader::~Uploader() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
    state_->cancel.store(true);
  }
  state_->cv.notify_all();
  state_->thread.join();
}

void Uploader::enqueue(const std::string& local_dir) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto& q = state_->pending;
  q.erase(std::remove(q.begin(), q.end(), local_dir), q.end());
  q.push_back(local_dir);
  while (q.size() > state_->options.max_pending) {
    log::warn("checkpoint upload queue full: skipping {} (a newer one is queued)", q.front());
    q.pop_front();
    ++state_->status.dropped;
  }
  state_->cv.notify_all();
}

bool Uploader::in_use(const std::string& local_dir) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->active == local_dir ||
         std::find(state_->pending.begin(), state_->pending.end(), local_dir) != state_->pending.end();
}

bool Uploader::drain(std::chrono::milliseconds timeout, std::uint64_t max_failures) {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->draining = true;
  state_->cv.notify_all();
  const std::uint64_t failed_before = state_->status.failed_attempts;
  auto idle = [&] { return state_->pending.empty() && state_->active.empty(); };
  state_->idle_cv.wait_for(lock, timeout, [&] {
    return idle() || (max_failures > 0 && state_->status.failed_attempts - failed_before >= max_failures);
  });
  state_->draining = false;
  return idle();
}

UploaderStatus Uploader::status() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  UploaderStatus s = state_->status;
  s.pending = state_->pending.size() + (state_->active.empty() ? 0 : 1);
  return s;
}

}  // namespace hf::storage
