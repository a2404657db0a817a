// The sync engine: push (local dir -> backend) and pull (backend -> local dir), incremental through
// the manifest, small files in parallel and large ones one at a time with parallel parts/ranges,
// per-file failures collected and reported at the end. Pull validates every key before writing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "storage/backends.h"
#include "storage/crypto.h"
#include "storage/local_root.h"
#include "storage/manifest.h"
#include "storage/storage.h"

namespace hf::storage {
namespace {

namespace fs = std::filesystem;
constexpr std::size_t kMaxComponent = 255;  // NAME_MAX

struct LocalFile {
  std::string rel;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

std::int64_t mtime_ns_of(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

// Printable form of an untrusted key for messages (control bytes escaped).
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Regular files below `root` (symlinked files followed, symlinked directories not: no loops).
std::vector<LocalFile> walk_local(const std::string& root, const PathFilter& filter, bool follow_file_links) {
  std::vector<LocalFile> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) throw Error(ErrorKind::kIo, "read directory '" + root + "': " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw Error(ErrorKind::kIo, "read directory '" + root + "': " + ec.message());
    const fs::path& p = it->path();
    if (is_temp_name(p.filename().string())) continue;
    struct stat st{};
    if (::lstat(p.c_str(), &st) != 0) continue;  // vanished meanwhile
    if (S_ISLNK(st.st_mode)) {
      if (!follow_file_links) continue;
      struct stat target{};
      if (::stat(p.c_str(), &target) != 0) {
        log::warn("skipping broken symlink '{}'", p.string());
        continue;
      }
      if (S_ISDIR(target.st_mode)) {
        log::warn("not following symlinked directory '{}'", p.string());
        continue;
      }
      st = target;
    }
    if (!S_ISREG(st.st_mode)) continue;
    std::string rel = p.lexically_relative(root).generic_string();
    if (!filter.selected(rel)) continue;
    out.push_back({rel, static_cast<std::uint64_t>(st.st_size), mtime_ns_of(st)});
  }
  std::sort(out.begin(), out.end(), [](const LocalFile& a, const LocalFile& b) { return a.rel < b.rel; });
  return out;
}

// Draws the progress line from a side thread so workers never touch the display.
class ProgressThread {
 public:
  ProgressThread(bool enabled, std::string label, std::uint64_t total, const Backend& backend)
      : backend_(backend), base_(backend.bytes_transferred()) {
    if (!enabled || !log::stderr_is_tty() || total == 0) return;
    progress_ = std::make_unique<log::Progress>(std::move(label), total);
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; }))
        progress_->update(backend_.bytes_transferred() - base_);
    });
  }
  ~ProgressThread() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    progress_->finish();
  }

 private:
  const Backend& backend_;
  std::uint64_t base_;
  std::unique_ptr<log::Progress> progress_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// Per-file failures: counted, the first kept for the final error (lib/ prints no errors: each one
// is a debug line, and the thrown error carries the count and the first). A cancel anywhere makes
// the whole run "interrupted".
class Failures {
 public:
  void add(const std::string& rel, std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
    ErrorKind kind = ErrorKind::kInternal;
    std::string msg;
    try {
      std::rethrow_exception(e);
    } catch (const Cancelled&) {
      cancelled_ = true;
      return;
    } catch (const Error& err) {
      kind = err.kind();
      msg = err.what();
    } catch (const std::exception& err) {
      msg = err.what();
    }
    log::debug("{}: {}", printable(rel), msg);
    if (first_.empty()) {
      kind_ = kind;
      first_ = msg;
    }
  }
  void throw_if_any(const std::string& verb, std::size_t total) const {
    if (count_ == 0) return;
    if (cancelled_) throw Cancelled();
    throw Error(kind_, std::to_string(count_) + " of " + std::to_string(total) + " files failed to " + verb +
                           "; first: " + first_);
  }
  bool any() const { return count_ > 0; }

 private:
  mutable std::mutex mu_;
  std::size_t count_ = 0;
  bool cancelled_ = false;
  ErrorKind kind_ = ErrorKind::kInternal;
  std::string first_;
};

std::string manifest_path(const SyncOptions& sync, const std::string& local, const std::string& url) {
  if (sync.manifest_path == "none") return "";
  return sync.manifest_path.empty() ? Manifest::default_path(local, url) : sync.manifest_path;
}

// End of a sync: the manifest is saved even after per-file failures (what succeeded is recorded);
// it is only a cache, so failing to save it is a warning.
void finish(const Manifest& manifest, bool save, SyncSummary& summary, std::chrono::steady_clock::time_point t0) {
  if (save) {
    try {
      manifest.save();
    } catch (const Error& e) {
      log::warn("could not save sync manifest: {}", e.what());
    }
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs fn(i) for every item: small ones (below the threshold) in parallel, large ones one at a
// time (they parallelise internally over parts/ranges). Exceptions go to `failures`.
template <typename Fn>
void run_items(std::size_t n, const std::function<bool(std::size_t)>& is_large, int jobs,
               const std::atomic<bool>* cancel, Failures& failures,
               const std::function<std::string(std::size_t)>& name, Fn fn) {
  std::vector<std::size_t> small, large;
  for (std::size_t i = 0; i < n; ++i) (is_large(i) ? large : small).push_back(i);
  auto one = [&](std::size_t i) {
    try {
      throw_if_cancelled(cancel);
      fn(i);
    } catch (...) {
      failures.add(name(i), std::current_exception());
    }
  };
  if (!small.empty()) {
    ThreadPool pool(std::max(1, std::min<int>(jobs, static_cast<int>(small.size()))));
    pool.parallel_for(small.size(), 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t k = b; k < e; ++k) one(small[k]);
    });
  }
  for (std::size_t i : large) one(i);
}

}  // namespace

std::optional<std::string> unsafe_key_reason(std::string_view key) {
  if (key.empty()) return "is empty";
  for (unsigned char c : key)
    if (c < 0x20 || c == 0x7f) return "contains control characters";
  if (key.front() == '/') return "is an absolute path";
  if (key.back() == '/') return "ends with '/'";
  std::size_t start = 0;
  while (start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view comp = key.substr(start, end - start);
    if (comp.empty()) return "has an empty path component";
    if (comp == "." || comp == "..") return "has a '" + std::string(comp) + "' path component";
    if (comp.size() > kMaxComponent) return "has a path component longer than 255 bytes";
    start = end + 1;
  }
  return std::nullopt;
}

SyncSummary push(const std::string& local_dir, const Url& dest, const Options& options, const SyncOptions& sync) {
  auto t0 = std::chrono::steady_clock::now();
  SyncSummary summary;
  summary.command = "push";
  summary.source = local_dir;
  summary.destination = dest.str();
  summary.dry_run = sync.dry_run;
  struct stat st{};
  if (::stat(local_dir.c_str(), &st) != 0) throw_errno(ErrorKind::kNoInput, "read directory", local_dir, errno);
  if (!S_ISDIR(st.st_mode)) throw Error(ErrorKind::kUsage, "'" + local_dir + "' is not a directory");

  std::vector<LocalFile> files = walk_local(local_dir, sync.filter, true);
  std::unique_ptr<Backend> backend = open_backend(dest, options);
  std::map<std::string, ObjectInfo> remote;
  for (auto& o : backend->list()) remote.emplace(o.key, std::move(o));
  std::string mpath = manifest_path(sync, local_dir, dest.str());
  Manifest manifest = mpath.empty() ? Manifest() : Manifest::load(mpath, local_dir, dest.str());
  std::mutex mu;  // guards manifest and summary

  // Fast path: size + mtime + remote ETag all match the manifest -> not read, not sent.
  std::vector<std::size_t> work;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const LocalFile& f = files[i];
    const ManifestEntry* e = manifest.find(f.rel);
    auto r = remote.find(f.rel);
    if (e != nullptr && r != remote.end() && e->size == f.size && e->mtime_ns == f.mtime_ns && !e->sha256.empty() &&
        !e->etag.empty() && r->second.etag == e->etag && r->second.size == f.size) {
      ++summary.files_unchanged;
    } else {
      work.push_back(i);
    }
  }
  std::uint64_t planned_bytes = 0;
  for (std::size_t i : work) planned_bytes += files[i].size;

  Failures failures;
  {
    ProgressThread progress(options.progress && !sync.dry_run, "push", planned_bytes, *backend);
    run_items(
        work.size(), [&](std::size_t k) { return files[work[k]].size >= options.multipart_threshold; }, options.jobs,
        options.cancel, failures, [&](std::size_t k) { return files[work[k]].rel; },
        [&](std::size_t k) {
          const LocalFile& f = files[work[k]];
          std::string abs = local_dir + "/" + f.rel;
          ManifestEntry known;
          {
            std::lock_guard<std::mutex> lock(mu);
            if (const ManifestEntry* e = manifest.find(f.rel)) known = *e;
          }
          std::string sha;
          if (known.size == f.size && known.mtime_ns == f.mtime_ns && !known.sha256.empty()) {
            sha = known.sha256;
          } else {
            sha = sha256_file(abs);
            std::lock_guard<std::mutex> lock(mu);
            ++summary.files_hashed;
          }
          auto r = remote.find(f.rel);
          std::string same_etag;
          if (r != remote.end() && r->second.size == f.size) {
            if (known.sha256 == sha && !known.etag.empty() && known.etag == r->second.etag) {
              same_etag = r->second.etag;
            } else if (auto h = backend->head(f.rel); h && !h->sha256.empty() && h->sha256 == sha) {
              same_etag = h->etag;  // identical content already there (another machine pushed it)
            }
          }
          {
            std::lock_guard<std::mutex> lock(mu);
            if (!same_etag.empty()) {
              ++summary.files_unchanged;
              manifest.set(f.rel, {f.size, f.mtime_ns, sha, same_etag});
              return;
            }
            summary.actions.push_back({"upload", f.rel, f.size});
          }
          if (sync.dry_run) return;
          ObjectInfo o = backend->put_file(abs, f.rel, sha);
          std::lock_guard<std::mutex> lock(mu);
          manifest.set(f.rel, {f.size, f.mtime_ns, sha, o.etag});
          ++summary.files_transferred;
          summary.bytes_transferred += f.size;
        });
  }

  // Deletions last, and only when every upload succeeded: a failed push must not shrink the remote.
  if (sync.delete_extra && !failures.any()) {
    std::vector<std::string> doomed;
    std::map<std::string, bool> local_set;
    for (const auto& f : files) local_set[f.rel] = true;
    for (const auto& [key, o] : remote)
      if (!local_set.count(key) && sync.filter.selected(key)) doomed.push_back(key);
    for (const auto& k : doomed) summary.actions.push_back({"delete", k, remote[k].size});
    if (!sync.dry_run && !doomed.empty()) {
      throw_if_cancelled(options.cancel);
      backend->remove(doomed);
      summary.files_deleted = doomed.size();
      for (const auto& k : doomed) manifest.erase(k);
    }
  }
  // Forget files that are gone locally (keeps the manifest from growing forever).
  {
    std::map<std::string, bool> local_set;
    for (const auto& f : files) local_set[f.rel] = true;
    std::vector<std::string> stale;
    for (const auto& [rel, e] : manifest.entries())
      if (!local_set.count(rel) && sync.filter.selected(rel)) stale.push_back(rel);
    for (const auto& r : stale) manifest.erase(r);
  }
  finish(manifest, !mpath.empty() && !sync.dry_run, summary, t0);
  failures.throw_if_any("upload", work.size());
  return summary;
}

SyncSummary pull(const Url& src, const std::string& local_dir, const Options& options, const SyncOptions& sync) {
  auto t0 = std::chrono::steady_clock::now();
  SyncSummary summary;
  summary.command = "pull";
  summary.source = src.str();
  summary.destination = local_dir;
  summary.dry_run = sync.dry_run;

  std::unique_ptr<Backend> backend = open_backend(src, options);
  std::vector<ObjectInfo> objects;
  for (auto& o : backend->list()) {
    if (!o.key.empty() && o.key.back() == '/' && o.size == 0) continue;  // console "folder" marker
    if (!sync.filter.selected(o.key)) continue;
    objects.push_back(std::move(o));
  }
  // Every key is checked before anything is written: one hostile key fails the whole pull.
  for (const auto& o : objects)
    if (auto why = unsafe_key_reason(o.key))
      throw Error(ErrorKind::kDataErr, "refusing to pull " + src.str() + ": key '" + printable(o.key) + "' " + *why +
                                           "; nothing was written");
  for (std::size_t i = 0; i + 1 < objects.size(); ++i) {
    const std::string& a = objects[i].key;
    for (std::size_t j = i + 1; j < objects.size() && objects[j].key.compare(0, a.size(), a) == 0; ++j)
      if (objects[j].key.size() > a.size() && objects[j].key[a.size()] == '/')
        throw Error(ErrorKind::kDataErr, "refusing to pull " + src.str() + ": '" + printable(a) +
                                             "' is both a file and a directory; nothing was written");
  }

  LocalRoot root(local_dir, !sync.dry_run);
  std::vector<LocalStat> local(objects.size());
  for (std::size_t i = 0; i < objects.size(); ++i) local[i] = root.inspect(objects[i].key);  // symlink checks

  std::string mpath = manifest_path(sync, local_dir, src.str());
  Manifest manifest = mpath.empty() ? Manifest() : Manifest::load(mpath, local_dir, src.str());
  std::mutex mu;

  std::vector<std::size_t> work;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    const ObjectInfo& o = objects[i];
    const ManifestEntry* e = manifest.find(o.key);
    if (local[i].exists && e != nullptr && e->size == local[i].size && e->mtime_ns == local[i].mtime_ns &&
        local[i].size == o.size && !e->etag.empty() && e->etag == o.etag && !e->sha256.empty()) {
      ++summary.files_unchanged;
    } else {
      work.push_back(i);
    }
  }
  std::uint64_t planned_bytes = 0;
  for (std::size_t i : work) planned_bytes += objects[i].size;

  Failures failures;
  {
    ProgressThread progress(options.progress && !sync.dry_run, "pull", planned_bytes, *backend);
    run_items(
        work.size(), [&](std::size_t k) { return objects[work[k]].size >= options.multipart_threshold; },
        options.jobs, options.cancel, failures, [&](std::size_t k) { return objects[work[k]].key; },
        [&](std::size_t k) {
          const ObjectInfo& o = objects[work[k]];
          const LocalStat& ls = local[work[k]];
          if (ls.exists && ls.size == o.size) {
            // Same size, unknown content: compare hashes before fetching anything.
            std::string abs = local_dir + "/" + o.key;
            std::optional<ObjectInfo> h = backend->head(o.key);
            bool md5_etag = o.etag.size() == 32 && o.etag.find('-') == std::string::npos;
            if (h && (!h->sha256.empty() || md5_etag)) {
              UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
              if (fd.get() >= 0) {
                RangeHashes hs = hash_fd_range(fd.get(), 0, ls.size, h->sha256.empty(), options.cancel);
                bool same = !h->sha256.empty() ? hs.sha256_hex == h->sha256 : to_hex(hs.md5_raw) == o.etag;
                std::lock_guard<std::mutex> lock(mu);
                ++summary.files_hashed;
                if (same) {
                  ++summary.files_unchanged;
                  manifest.set(o.key, {ls.size, ls.mtime_ns, hs.sha256_hex, o.etag});
                  return;
                }
              }
            }
          }
          {
            std::lock_guard<std::mutex> lock(mu);
            summary.actions.push_back({"download", o.key, o.size});
          }
          if (sync.dry_run) return;
          LocalRoot::Temp tmp = root.create_temp(o.key);
          Fetched got = backend->get_to_fd(o, tmp.fd());
          tmp.commit();
          LocalStat now = root.inspect(o.key);
          log::debug("{}: verified by {}", o.key, verified_name(got.verified));
          std::lock_guard<std::mutex> lock(mu);
          manifest.set(o.key, {now.size, now.mtime_ns, got.sha256, o.etag});
          ++summary.files_transferred;
          summary.bytes_transferred += o.size;
        });
  }

  // Leftover temps of an interrupted earlier pull, and (with --delete) files absent remotely.
  std::vector<std::string> extra;
  if (!sync.dry_run || sync.delete_extra) {
    std::error_code ec;
    if (fs::is_directory(local_dir, ec)) {
      std::map<std::string, bool> wanted;
      for (const auto& o : objects) wanted[o.key] = true;
      fs::recursive_directory_iterator it(local_dir, fs::directory_options::none, ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
        std::string rel = it->path().lexically_relative(local_dir).generic_string();
        if (is_temp_name(it->path().filename().string())) {
          if (!sync.dry_run) root.remove_file(rel);
          continue;
        }
        if (sync.delete_extra && !wanted.count(rel) && sync.filter.selected(rel)) extra.push_back(rel);
      }
    }
  }
  if (sync.delete_extra && !failures.any()) {
    for (const auto& rel : extra) {
      summary.actions.push_back({"delete", rel, 0});
      if (sync.dry_run) continue;
      root.remove_file(rel);
      manifest.erase(rel);
      ++summary.files_deleted;
    }
  }
  finish(manifest, !mpath.empty() && !sync.dry_run, summary, t0);
  failures.throw_if_any("download", work.size());
  return summary;
}

std::string summary_json(const SyncSummary& s) {
  nlohmann::json actions = nlohmann::json::array();
  for (const auto& a : s.actions) actions.push_back({{"action", a.kind}, {"path", a.path}, {"size", a.size}});
  nlohmann::json j = {{"command", s.command},
                      {"source", s.source},
                      {"destination", s.destination},
                      {"dry_run", s.dry_run},
                      {"files_transferred", s.files_transferred},
                      {"bytes_transferred", s.bytes_transferred},
                      {"files_unchanged", s.files_unchanged},
                      {"files_deleted", s.files_deleted},
                      {"files_hashed", s.files_hashed},
                      {"seconds", s.seconds},
                      {"actions", actions}};
  return j.dump();
}

}  // namespace hf::storage
