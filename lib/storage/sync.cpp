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

// The sync's manifest; `*path` is "" when it is turned off ("none": empty, never saved).
Manifest load_manifest(const SyncOptions& sync, const std::string& local, const std::string& url, std::string* path) {
  *path = sync.manifest_path == "none" ? ""
          : sync.manifest_path.empty() ? Manifest::default_path(local, url)
                                       : sync.manifest_path;
  return path->empty() ? Manifest() : Manifest::load(*path, local, url);
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

// The items a sync must look at (the rest are unchanged according to the manifest).
struct Plan {
  std::vector<std::size_t> work;  // indices into the item list, in order
  std::uint64_t bytes = 0;        // their total size, for the progress line
};

template <typename Unchanged, typename SizeOf>
Plan make_plan(std::size_t n, Unchanged unchanged, SizeOf size_of, SyncSummary& summary) {
  Plan plan;
  for (std::size_t i = 0; i < n; ++i) {
    if (unchanged(i)) {
      ++summary.files_unchanged;
    } else {
      plan.work.push_back(i);
      plan.bytes += size_of(i);
    }
  }
  return plan;
}

// Runs one(i) for every planned item: small ones (below the multipart threshold) in parallel,
// large ones one at a time (they parallelise internally over parts/ranges). Exceptions go to
// `failures`; a progress line shows the backend's bytes.
template <typename SizeOf, typename NameOf, typename One>
void execute(const Plan& plan, const char* label, SizeOf size_of, NameOf name_of, One one, const Options& options,
             bool dry_run, const Backend& backend, Failures& failures) {
  ProgressThread progress(options.progress && !dry_run, label, plan.bytes, backend);
  std::vector<std::size_t> small, large;
  for (std::size_t i : plan.work) (size_of(i) >= options.multipart_threshold ? large : small).push_back(i);
  auto guarded = [&](std::size_t i) {
    try {
      throw_if_cancelled(options.cancel);
      one(i);
    } catch (...) {
      failures.add(name_of(i), std::current_exception());
    }
  };
  if (!small.empty()) {
    ThreadPool pool(std::max(1, std::min<int>(options.jobs, static_cast<int>(small.size()))));
    pool.parallel_for(small.size(), 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t k = b; k < e; ++k) guarded(small[k]);
    });
  }
  for (std::size_t i : large) guarded(i);
}

// What every per-file step of one sync shares; `mu` guards manifest and summary.
struct SyncState {
  Backend& backend;
  Manifest& manifest;
  SyncSummary& summary;
  const SyncOptions& sync;
  const Options& options;
  std::mutex mu;
};

// Uploads one local file unless the remote already has its content (by manifest or by the
// sha256 recorded on the object).
void upload_one(SyncState& st, const std::string& local_dir, const LocalFile& f,
                const std::map<std::string, ObjectInfo>& remote) {
  std::string abs = local_dir + "/" + f.rel;
  ManifestEntry known;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (const ManifestEntry* e = st.manifest.find(f.rel)) known = *e;
  }
  std::string sha;
  if (known.size == f.size && known.mtime_ns == f.mtime_ns && !known.sha256.empty()) {
    sha = known.sha256;
  } else {
    sha = sha256_file(abs);
    std::lock_guard<std::mutex> lock(st.mu);
    ++st.summary.files_hashed;
  }
  auto r = remote.find(f.rel);
  std::string same_etag;
  if (r != remote.end() && r->second.size == f.size) {
    if (known.sha256 == sha && !known.etag.empty() && known.etag == r->second.etag) {
      same_etag = r->second.etag;
    } else if (auto h = st.backend.head(f.rel); h && !h->sha256.empty() && h->sha256 == sha) {
      same_etag = h->etag;  // identical content already there (another machine pushed it)
    }
  }
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (!same_etag.empty()) {
      ++st.summary.files_unchanged;
      st.manifest.set(f.rel, {f.size, f.mtime_ns, sha, same_etag});
      return;
    }
    st.summary.actions.push_back({"upload", f.rel, f.size});
  }
  if (st.sync.dry_run) return;
  ObjectInfo o = st.backend.put_file(abs, f.rel, sha);
  std::lock_guard<std::mutex> lock(st.mu);
  st.manifest.set(f.rel, {f.size, f.mtime_ns, sha, o.etag});
  ++st.summary.files_transferred;
  st.summary.bytes_transferred += f.size;
}

// Downloads one object into a verified temp file renamed over its target, unless a same-size
// local file already has the content the store records.
void download_one(SyncState& st, LocalRoot& root, const ObjectInfo& o, const LocalStat& ls) {
  if (ls.exists && ls.size == o.size) {
    // Same size, unknown content: compare hashes before fetching anything.
    std::string abs = root.path() + "/" + o.key;
    std::optional<ObjectInfo> h = st.backend.head(o.key);
    bool md5_etag = o.etag.size() == 32 && o.etag.find('-') == std::string::npos;
    if (h && (!h->sha256.empty() || md5_etag)) {
      UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (fd.valid()) {
        RangeHashes hs = hash_fd_range(fd.get(), 0, ls.size, h->sha256.empty(), st.options.cancel);
        bool same = !h->sha256.empty() ? hs.sha256_hex == h->sha256 : to_hex(hs.md5_raw) == o.etag;
        std::lock_guard<std::mutex> lock(st.mu);
        ++st.summary.files_hashed;
        if (same) {
          ++st.summary.files_unchanged;
          st.manifest.set(o.key, {ls.size, ls.mtime_ns, hs.sha256_hex, o.etag});
          return;
        }
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.summary.actions.push_back({"download", o.key, o.size});
  }
  if (st.sync.dry_run) return;
  LocalRoot::Temp tmp = root.create_temp(o.key);
  Fetched got = st.backend.get_to_fd(o, tmp.fd());
  tmp.commit();
  LocalStat now = root.inspect(o.key);
  log::debug("{}: verified by {}", printable(o.key), verified_name(got.verified));
  std::lock_guard<std::mutex> lock(st.mu);
  st.manifest.set(o.key, {now.size, now.mtime_ns, got.sha256, o.etag});
  ++st.summary.files_transferred;
  st.summary.bytes_transferred += o.size;
}

// --delete with nothing on the source side would empty the destination: a typo in a prefix or a
// wrong directory must not wipe anything unless --force says so.
void refuse_empty_source(const SyncOptions& sync, const std::string& source, const char* side) {
  if (sync.delete_extra && !sync.force)
    throw Error(ErrorKind::kNoInput, source + ": no " + side + " (or none selected by --include/--exclude); "
                                         "refusing to --delete everything at the destination (--force does)");
}

}  // namespace

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else if (c == '\\') {
      out += "\\\\";  // so an escaped control byte and a literal "\x0a" read differently
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

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
  if (files.empty()) refuse_empty_source(sync, local_dir, "files");
  std::unique_ptr<Backend> backend = open_backend(dest, options);
  std::map<std::string, ObjectInfo> remote;
  for (auto& o : backend->list()) remote.emplace(o.key, std::move(o));
  std::string mpath;
  Manifest manifest = load_manifest(sync, local_dir, dest.str(), &mpath);
  SyncState state{*backend, manifest, summary, sync, options, {}};

  // Fast path: size + mtime + remote ETag all match the manifest -> not read, not sent.
  Plan plan = make_plan(
      files.size(),
      [&](std::size_t i) {
        const LocalFile& f = files[i];
        const ManifestEntry* e = manifest.find(f.rel);
        auto r = remote.find(f.rel);
        return e != nullptr && r != remote.end() && e->size == f.size && e->mtime_ns == f.mtime_ns &&
               !e->sha256.empty() && !e->etag.empty() && r->second.etag == e->etag && r->second.size == f.size;
      },
      [&](std::size_t i) { return files[i].size; }, summary);
  Failures failures;
  execute(
      plan, "push", [&](std::size_t i) { return files[i].size; }, [&](std::size_t i) { return files[i].rel; },
      [&](std::size_t i) { upload_one(state, local_dir, files[i], remote); }, options, sync.dry_run, *backend,
      failures);

  std::map<std::string, bool> local_set;
  for (const auto& f : files) local_set[f.rel] = true;
  // Deletions last, and only when every upload succeeded: a failed push must not shrink the remote.
  if (sync.delete_extra && !failures.any()) {
    std::vector<std::string> doomed;
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
  std::vector<std::string> stale;
  for (const auto& [rel, e] : manifest.entries())
    if (!local_set.count(rel) && sync.filter.selected(rel)) stale.push_back(rel);
  for (const auto& r : stale) manifest.erase(r);
  finish(manifest, !mpath.empty() && !sync.dry_run, summary, t0);
  failures.throw_if_any("upload", plan.work.size());
  return summary;
}

namespace {

// The objects a pull would write, every key checked before anything is written: one hostile key
// fails the whole pull.
std::vector<ObjectInfo> pullable_objects(Backend& backend, const Url& src, const SyncOptions& sync) {
  std::vector<ObjectInfo> objects;
  for (auto& o : backend.list()) {
    if (!o.key.empty() && o.key.back() == '/' && o.size == 0) continue;  // console "folder" marker
    if (!sync.filter.selected(o.key)) continue;
    objects.push_back(std::move(o));
  }
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
  return objects;
}

// Local files below `local_dir` that are not among `objects` (selected by the filter), after
// removing leftover temps of an interrupted earlier pull (not in a dry run).
std::vector<std::string> local_extras(LocalRoot& root, const std::vector<ObjectInfo>& objects,
                                      const SyncOptions& sync) {
  std::vector<std::string> extra;
  const std::string& local_dir = root.path();
  std::error_code ec;
  if (!fs::is_directory(local_dir, ec)) return extra;
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
  return extra;
}

}  // namespace

SyncSummary pull(const Url& src, const std::string& local_dir, const Options& options, const SyncOptions& sync) {
  auto t0 = std::chrono::steady_clock::now();
  SyncSummary summary;
  summary.command = "pull";
  summary.source = src.str();
  summary.destination = local_dir;
  summary.dry_run = sync.dry_run;

  std::unique_ptr<Backend> backend = open_backend(src, options);
  std::vector<ObjectInfo> objects = pullable_objects(*backend, src, sync);
  // A prefix with nothing under it is most likely a typo: "input missing", and nothing deleted.
  if (objects.empty()) {
    refuse_empty_source(sync, src.str(), "objects");
    if (!sync.delete_extra)
      throw Error(ErrorKind::kNoInput, src.str() + ": no objects (or none selected by --include/--exclude)");
  }

  LocalRoot root(local_dir, !sync.dry_run);
  std::vector<LocalStat> local(objects.size());
  for (std::size_t i = 0; i < objects.size(); ++i) local[i] = root.inspect(objects[i].key);  // symlink checks
  std::string mpath;
  Manifest manifest = load_manifest(sync, local_dir, src.str(), &mpath);
  SyncState state{*backend, manifest, summary, sync, options, {}};

  Plan plan = make_plan(
      objects.size(),
      [&](std::size_t i) {
        const ObjectInfo& o = objects[i];
        const ManifestEntry* e = manifest.find(o.key);
        return local[i].exists && e != nullptr && e->size == local[i].size && e->mtime_ns == local[i].mtime_ns &&
               local[i].size == o.size && !e->etag.empty() && e->etag == o.etag && !e->sha256.empty();
      },
      [&](std::size_t i) { return objects[i].size; }, summary);
  Failures failures;
  execute(
      plan, "pull", [&](std::size_t i) { return objects[i].size; }, [&](std::size_t i) { return objects[i].key; },
      [&](std::size_t i) { download_one(state, root, objects[i], local[i]); }, options, sync.dry_run, *backend,
      failures);

  std::vector<std::string> extra;
  if (!sync.dry_run || sync.delete_extra) extra = local_extras(root, objects, sync);
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
  failures.throw_if_any("download", plan.work.size());
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
