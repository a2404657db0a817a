// Downloading a repo into the Hugging Face cache, following huggingface_hub's protocol
// (file_download.py): the API gives the commit and the file list, a HEAD on each resolve/ URL gives
// the blob's ETag (X-Linked-Etag for LFS files) and size (X-Linked-Size), stopping at a redirect
// to another host (the CDN); the GET streams into blobs/<etag>.incomplete under a per-blob flock,
// resuming with Range after an interruption, and is renamed once its size (and sha256, for an LFS
// etag) checks out. Snapshot symlinks follow, refs/<revision> last. No retry loop: a failure is
// typed (hub.h) and a re-run picks up where this one stopped.
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/fd.h"
#include "core/file.h"
#include "core/log.h"
#include "core/signals.h"
#include "hub/hub.h"
#include "hub/internal.h"
#include "storage/http.h"
#include "storage/storage.h"

namespace fs = std::filesystem;
using hf::storage::HttpClient;
using hf::storage::HttpRequest;
using hf::storage::HttpResponse;

namespace hf::hub {
namespace {

constexpr int kMaxRedirects = 10;           // huggingface_hub stops after as many
constexpr double kConnectTimeoutS = 10;     // huggingface_hub's default etag timeout
constexpr double kReadTimeoutS = 60;        // no byte for this long: the transfer timed out

struct CurluFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using Curlu = std::unique_ptr<CURLU, CurluFree>;

Curlu parse_url(const std::string& url) {
  Curlu u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return nullptr;
  return u;
}

std::string url_part(const Curlu& u, CURLUPart which) {
  char* value = nullptr;
  if (!u || curl_url_get(u.get(), which, &value, 0) != CURLUE_OK || value == nullptr) return {};
  std::string out(value);
  curl_free(value);
  return out;
}

// A Location header (absolute or relative) against the URL that answered it.
std::string join_url(const std::string& base, const std::string& location) {
  Curlu u = parse_url(base);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, location.c_str(), 0) != CURLUE_OK)
    throw Error(ErrorKind::kDataErr, fmt::format("{}: bad redirect Location '{}'", storage::redact_url(base), location));
  return url_part(u, CURLUPART_URL);
}

std::string host_of(const std::string& url) { return url_part(parse_url(url), CURLUPART_HOST); }

// Percent-encodes all but RFC 3986's unreserved characters (Python's quote(s, safe="")).
std::string quote(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

// One repo's conversation with the endpoint.
class Session {
 public:
  Session(const Settings& settings, const RepoRef& ref)
      : settings_(settings), ref_(ref), endpoint_host_(host_of(settings.endpoint)),
        http_(storage::HttpSettings{true, kConnectTimeoutS, kReadTimeoutS, nullptr}) {
    if (endpoint_host_.empty())
      throw Error(ErrorKind::kUsage, fmt::format("HF_ENDPOINT '{}' is not a URL", storage::redact_url(settings.endpoint)));
  }

  const Settings& settings() const { return settings_; }
  const RepoRef& ref() const { return ref_; }

  // A request to `url`, with the token only when `url` is on the endpoint's host.
  HttpResponse perform(HttpRequest req) {
    req.headers.emplace_back("User-Agent", "hfkit");
    if (!settings_.token.empty() && host_of(req.url) == endpoint_host_)
      req.headers.emplace_back("Authorization", "Bearer " + settings_.token);
    return http_.perform(req);
  }

  // Throws the typed error of a failed answer from `url` (see hub.h for the kinds).
  [[noreturn]] void fail(const HttpResponse& r, const std::string& url, std::string_view file = {}) const {
    const std::string what = ref_.repo_id + "@" + ref_.revision;
    const std::string where = storage::redact_url(url);
    if (r.status == 0) {
      if (storage::is_connect_failure(r.curl_code))
        throw Error(ErrorKind::kUnavailable, fmt::format("{}: cannot reach {}: {}", what, where, r.error));
      throw Error(ErrorKind::kTempFail, fmt::format("{}: {}: {}", what, where, r.error));
    }
    const std::string code = r.header("x-error-code");
    const std::string page = storage::redact_url(settings_.endpoint) + "/" + ref_.repo_id;
    switch (r.status) {
      case 401:
        throw Error(ErrorKind::kNoPerm,
                    fmt::format("{}: repository not found, or private or gated and {} (401 from {})", what,
                                settings_.token.empty() ? "no token given: set HF_TOKEN or run `hf auth login`"
                                                        : "the token (HF_TOKEN or the token file) was refused",
                                where));
      case 403:
        if (code == "GatedRepo")
          throw Error(ErrorKind::kNoPerm, fmt::format("{}: gated repository: accept its conditions on {} with the "
                                                      "account of your token (403 from {})", what, page, where));
        throw Error(ErrorKind::kNoPerm, fmt::format("{}: access denied (403 from {})", what, where));
      case 404:
        if (code == "RevisionNotFound")
          throw Error(ErrorKind::kNoInput, fmt::format("{}: revision '{}' not found (404 from {})", what, ref_.revision, where));
        if (code == "EntryNotFound" && !file.empty())
          throw Error(ErrorKind::kNoInput, fmt::format("{}: file '{}' not found (404 from {})", what, file, where));
        throw Error(ErrorKind::kNoInput, fmt::format("{}: repository not found (404 from {})", what, where));
      default: break;
    }
    if (r.status == 429 || r.status >= 500)
      throw Error(ErrorKind::kTempFail, fmt::format("{}: HTTP {} from {}: try again later", what, r.status, where));
    throw Error(ErrorKind::kUnavailable, fmt::format("{}: unexpected HTTP {} from {}", what, r.status, where));
  }

 private:
  const Settings& settings_;
  const RepoRef& ref_;
  std::string endpoint_host_;
  HttpClient http_;
};

bool is_sha256_hex(std::string_view s) {
  return s.size() == kSha256HexLength &&
         s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

bool is_redirect(long status) { return status == 301 || status == 302 || status == 303 || status == 307 || status == 308; }

RepoInfo fetch_repo_info(Session& s) {
  const std::string url =
      fmt::format("{}/api/models/{}/revision/{}", s.settings().endpoint, s.ref().repo_id, quote(s.ref().revision));
  HttpRequest req;
  req.url = url;
  HttpResponse r = s.perform(req);
  if (!r.ok()) s.fail(r, url);
  return parse_repo_info(r.body, storage::redact_url(url));
}

// What a HEAD on a resolve/ URL tells.
struct FileMeta {
  std::string etag;
  std::optional<std::uint64_t> size;
  std::string location;  // where to GET it: the resolve/ URL, or the CDN it redirects to
};

std::optional<std::uint64_t> parse_size(const std::string& s) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoull(s);
}

FileMeta head_file(Session& s, const std::string& commit, const std::string& file) {
  std::string url = fmt::format("{}/{}/resolve/{}/{}", s.settings().endpoint, s.ref().repo_id, commit, quote(file));
  const std::string first = url;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    HttpRequest req;
    req.method = "HEAD";
    req.url = url;
    req.headers.emplace_back("Accept-Encoding", "identity");  // the real size, not a compressed one
    HttpResponse r = s.perform(req);
    const bool redirect = is_redirect(r.status) && !r.header("location").empty();
    if (!redirect && !r.ok()) s.fail(r, url, file);
    std::string target = url;
    if (redirect) {
      target = join_url(url, r.header("location"));
      // A redirect on the same host (a renamed repo) is followed; one to another host is the CDN,
      // and this response already carries the file's metadata.
      if (host_of(target) == host_of(url)) {
        url = target;
        continue;
      }
    }
    if (r.header("x-repo-commit").empty())
      throw Error(ErrorKind::kDataErr, fmt::format("{}: no X-Repo-Commit header: HF_ENDPOINT does not look like a "
                                                   "Hugging Face Hub", storage::redact_url(url)));
    FileMeta meta;
    const std::string linked = r.header("x-linked-etag");
    meta.etag = normalize_etag(linked.empty() ? r.header("etag") : linked);
    if (!is_safe_etag(meta.etag))
      throw Error(ErrorKind::kDataErr, fmt::format("{}: missing or unusable ETag '{}'", storage::redact_url(url), meta.etag));
    const std::string linked_size = r.header("x-linked-size");
    meta.size = parse_size(!linked_size.empty() ? linked_size : redirect ? "" : r.header("content-length"));
    meta.location = target;
    return meta;
  }
  throw Error(ErrorKind::kDataErr, fmt::format("{}: more than {} redirects", storage::redact_url(first), kMaxRedirects));
}

// flock(2) on a lock file, as huggingface_hub's filelock takes it, so Python and hfkit processes
// downloading the same blob wait for each other. The file stays (deleting it would race).
class BlobLock {
 public:
  BlobLock(const std::string& path, const std::string& what) {
    fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd_.valid()) throw_errno(ErrorKind::kCantCreate, "cannot create lock file", path, errno);
    if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) return;
    if (errno != EWOULDBLOCK) throw_errno(ErrorKind::kIo, "cannot lock", path, errno);
    log::info("{}: another process is downloading it; waiting ({})", what, path);
    while (::flock(fd_.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw_errno(ErrorKind::kIo, "cannot lock", path, errno);
      check_stop();
    }
  }

 private:
  UniqueFd fd_;  // closing it releases the lock
};

std::uint64_t file_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(ErrorKind::kIo, "cannot stat", path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

// GETs `meta.location` into `blob`.incomplete (resuming what is there), checks it, renames it.
void fetch_blob(Session& s, const FileMeta& meta, const std::string& blob, const std::string& file) {
  const std::string part = blob + ".incomplete";
  UniqueFd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) throw_errno(ErrorKind::kCantCreate, "cannot create", part, errno);
  std::uint64_t have = file_size(fd.get(), part);
  if (meta.size && have > *meta.size) have = 0;  // not a prefix of this blob: start over
  if (::ftruncate(fd.get(), static_cast<off_t>(have)) != 0) throw_errno(ErrorKind::kIo, "cannot truncate", part, errno);
  if (have > 0) log::info("{}: resuming at byte {}", file, have);
  log::Progress progress(file, meta.size.value_or(0));
  std::string url = meta.location;
  for (int hop = 0; !meta.size || have < *meta.size; ++hop) {
    if (hop > kMaxRedirects)
      throw Error(ErrorKind::kDataErr, fmt::format("{}: more than {} redirects", storage::redact_url(meta.location), kMaxRedirects));
    HttpRequest req;
    req.url = url;
    if (have > 0) req.headers.emplace_back("Range", fmt::format("bytes={}-", have));
    req.out_fd = fd.get();
    req.out_offset = have;
    req.out_limit = meta.size ? *meta.size - have : 0;
    const std::uint64_t base = have;
    req.on_body = [&](const char*, std::size_t n) {
      have += n;
      progress.update(have);
    };
    HttpResponse r = s.perform(req);
    if (is_redirect(r.status) && !r.header("location").empty()) {
      url = join_url(url, r.header("location"));
      have = base;
      continue;
    }
    if (r.status == 200 && base > 0) {  // the server ignored Range: what it sent starts at byte 0
      log::info("{}: the server cannot resume; downloading it again", file);
      have = 0;
      if (::ftruncate(fd.get(), 0) != 0) throw_errno(ErrorKind::kIo, "cannot truncate", part, errno);
      continue;
    }
    if (r.status == 416) {  // nothing left to send after `base`: a stale .incomplete, start over
      have = 0;
      if (::ftruncate(fd.get(), 0) != 0) throw_errno(ErrorKind::kIo, "cannot truncate", part, errno);
      continue;
    }
    if (r.write_errno != 0) throw_errno(ErrorKind::kIo, "cannot write", part, r.write_errno);
    if (r.overflow)
      throw Error(ErrorKind::kDataErr, fmt::format("{}: the server sent more than the {} bytes announced",
                                                   storage::redact_url(url), *meta.size));
    if (r.status != 0 && (r.status < 200 || r.status >= 300)) s.fail(r, url, file);
    if (r.curl_code != 0 || (meta.size && have < *meta.size))
      throw Error(ErrorKind::kTempFail,
                  fmt::format("{}: download interrupted after {} of {} bytes ({}); run again to resume from {}", file,
                              have, meta.size ? std::to_string(*meta.size) : "?", r.error.empty() ? "connection closed" : r.error,
                              part));
    break;
  }
  progress.finish();
  if (::fsync(fd.get()) != 0) throw_errno(ErrorKind::kIo, "cannot fsync", part, errno);
  fd.reset();
  const std::string etag = fs::path(blob).filename().string();
  auto corrupt = [&](const std::string& why) {
    std::error_code ec;
    fs::remove(part, ec);  // a wrong blob must not be resumed
    return Error(ErrorKind::kDataErr, fmt::format("{}: corrupt download from {}: {}; removed, run again",
                                                  file, storage::redact_url(meta.location), why));
  };
  const std::uint64_t got = fs::file_size(part);
  if (meta.size && got != *meta.size) throw corrupt(fmt::format("{} bytes, expected {}", got, *meta.size));
  // An LFS file's etag is its sha256; a small file's is its git blob id (checked by size only).
  if (is_sha256_hex(etag)) {
    const std::string sha = sha256_file(part);
    if (sha != etag) throw corrupt("sha256 " + sha + " differs from its ETag");
  }
  std::error_code ec;
  fs::rename(part, blob, ec);
  if (ec) throw Error(ErrorKind::kIo, fmt::format("cannot rename {} to {}: {}", part, blob, ec.message()));
}

// snapshots/<commit>/<file> -> ../../blobs/<etag> (relative, as huggingface_hub makes them, so a
// moved cache keeps working), made under a temp name and renamed over any older link.
void link_snapshot(const std::string& snapshot, const std::string& file, const std::string& etag) {
  const std::string dst = snapshot + "/" + file;
  const std::string tmp = fmt::format("{}.{}.tmp", dst, ::getpid());
  ::unlink(tmp.c_str());
  if (::symlink(("../../blobs/" + etag).c_str(), tmp.c_str()) != 0)
    throw_errno(ErrorKind::kCantCreate, "cannot create symlink", tmp, errno);
  if (::rename(tmp.c_str(), dst.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_errno(ErrorKind::kCantCreate, "cannot create", dst, err);
  }
}

void fetch_file(Session& s, const RepoPaths& paths, const std::string& commit, const std::string& file) {
  const std::string snapshot = paths.snapshot(commit);
  std::error_code ec;
  if (fs::is_regular_file(snapshot + "/" + file, ec)) return;
  check_stop();
  const FileMeta meta = head_file(s, commit, file);
  const std::string blob = paths.blob(meta.etag);
  if (!fs::exists(blob, ec)) {
    BlobLock lock(paths.locks + "/" + meta.etag + ".lock", file);
    if (!fs::exists(blob, ec)) {
      log::info("{}@{}: downloading {}{}", s.ref().repo_id, commit.substr(0, 8), file,
                meta.size ? fmt::format(" ({} bytes)", *meta.size) : "");
      fetch_blob(s, meta, blob, file);
    }
  }
  link_snapshot(snapshot, file, meta.etag);
}

}  // namespace

std::string download(const RepoRef& ref, const Settings& settings) {
  Session session(settings, ref);
  const RepoPaths paths(settings, ref);
  const RepoInfo info = fetch_repo_info(session);
  std::vector<std::string> files;
  for (const std::string& f : info.files)
    if (is_wanted_file(f)) files.push_back(f);
  if (files.empty())
    throw Error(ErrorKind::kNoInput, fmt::format("{}@{}: none of the files hfkit reads (config.json, model.safetensors, "
                                                 "tokenizer.json, ...) is in the repository", ref.repo_id, ref.revision));
  const std::string snapshot = paths.snapshot(info.sha);
  make_dirs(snapshot);
  make_dirs(paths.storage + "/blobs");
  make_dirs(paths.locks);
  for (const std::string& f : files) fetch_file(session, paths, info.sha, f);
  const std::string index = snapshot + "/" + kIndexFile;
  if (fs::exists(index))
    for (const std::string& shard : index_shards(read_file(index), index)) fetch_file(session, paths, info.sha, shard);
  if (ref.revision != info.sha) {
    // Last, so that a reader following refs/ finds a complete snapshot.
    const std::string ref_file = paths.ref_file(ref.revision);
    make_dirs(fs::path(ref_file).parent_path().string());
    write_file_atomic(ref_file, info.sha);
  }
  return snapshot;
}

}  // namespace hf::hub
