// Local directory backend (a path or file://, e.g. NFS or Lustre): objects are files below the
// root, "ETags" are "<mtime_ns>-<size>", writes go through a temp file and a rename.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "storage/backends.h"
#include "storage/local_root.h"

namespace hf::storage {
namespace {

namespace fs = std::filesystem;
constexpr std::size_t kCopyChunk = 1 << 20;

std::string iso_time(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
  return buf;
}

std::optional<ObjectInfo> stat_object(const std::string& path, std::string key) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw_errno(ErrorKind::kIo, "stat", path, errno);
  }
  if (!S_ISREG(st.st_mode)) return std::nullopt;
  ObjectInfo o;
  o.key = std::move(key);
  o.size = static_cast<std::uint64_t>(st.st_size);
  std::int64_t ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  o.etag = std::to_string(ns) + "-" + std::to_string(o.size);
  o.last_modified = iso_time(st.st_mtim.tv_sec);
  return o;
}

// Copies all of `in` to `out` (offset 0), hashing when `sha` is set; returns bytes copied.
std::uint64_t copy_fd(int in, int out, Sha256* sha, std::atomic<std::uint64_t>& progress,
                      const std::atomic<bool>* cancel, const std::string& what) {
  std::string buf(kCopyChunk, '\0');
  std::uint64_t total = 0;
  while (true) {
    throw_if_cancelled(cancel);
    ssize_t r = ::read(in, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno(ErrorKind::kIo, "read", what, errno);
    if (r == 0) break;
    if (sha != nullptr) sha->update(buf.data(), static_cast<std::size_t>(r));
    std::size_t done = 0;
    while (done < static_cast<std::size_t>(r)) {
      ssize_t w = ::write(out, buf.data() + done, static_cast<std::size_t>(r) - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) throw_errno(ErrorKind::kIo, "write copy of", what, errno);
      done += static_cast<std::size_t>(w);
    }
    total += static_cast<std::uint64_t>(r);
    progress.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed);
  }
  return total;
}

}  // namespace

LocalBackend::LocalBackend(Url root, const Options& options) : root_(std::move(root)), options_(options) {
  while (root_.path.size() > 1 && root_.path.back() == '/') root_.path.pop_back();
}

std::string LocalBackend::path_of(std::string_view key) const {
  return key.empty() ? root_.path : root_.path + "/" + std::string(key);
}

std::vector<ObjectInfo> LocalBackend::list(std::string_view sub) {
  std::vector<ObjectInfo> out;
  std::string base = path_of(sub);
  std::error_code ec;
  if (!fs::is_directory(base, ec)) return out;
  fs::recursive_directory_iterator it(base, fs::directory_options::none, ec);
  if (ec) throw Error(ErrorKind::kIo, "list '" + base + "': " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw Error(ErrorKind::kIo, "list '" + base + "': " + ec.message());
    if (is_temp_name(it->path().filename().string())) continue;
    std::string rel = fs::relative(it->path(), root_.path).generic_string();
    if (auto o = stat_object(it->path().string(), rel)) out.push_back(std::move(*o));
  }
  std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

DirListing LocalBackend::list_dir(std::string_view sub) {
  DirListing out;
  std::string base = path_of(sub);
  std::error_code ec;
  if (!fs::is_directory(base, ec)) return out;
  for (const auto& e : fs::directory_iterator(base, ec)) {
    std::string name = e.path().filename().string();
    if (is_temp_name(name)) continue;
    std::string rel = std::string(sub) + name;
    if (e.is_directory(ec)) {
      out.prefixes.push_back(rel + "/");
    } else if (auto o = stat_object(e.path().string(), rel)) {
      out.objects.push_back(std::move(*o));
    }
  }
  if (ec) throw Error(ErrorKind::kIo, "list '" + base + "': " + ec.message());
  std::sort(out.prefixes.begin(), out.prefixes.end());
  std::sort(out.objects.begin(), out.objects.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

std::optional<ObjectInfo> LocalBackend::head(std::string_view key) {
  return stat_object(path_of(key), std::string(key));
}

ObjectInfo LocalBackend::put_file(const std::string& local_path, std::string_view key, const std::string& sha256) {
  UniqueFd file = open_read(local_path);
  int in = file.get();
  LocalRoot root(root_.path, true);
  LocalRoot::Temp tmp = root.create_temp(key);
  Sha256 sha;
  copy_fd(in, tmp.fd(), &sha, bytes_, options_.cancel, local_path);
  std::string got = sha.hex_digest();
  if (!sha256.empty() && got != sha256)
    throw Error(ErrorKind::kTempFail, local_path + ": file changed while it was copied");
  tmp.commit();
  auto o = head(key);
  if (!o) throw Error(ErrorKind::kIo, "'" + path_of(key) + "' vanished after writing");
  o->sha256 = got;
  return *o;
}

ObjectInfo LocalBackend::put_bytes(std::string_view data, std::string_view key) {
  LocalRoot root(root_.path, true);
  LocalRoot::Temp tmp = root.create_temp(key);
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(tmp.fd(), data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw_errno(ErrorKind::kIo, "write", path_of(key), errno);
    done += static_cast<std::size_t>(w);
  }
  tmp.commit();
  auto o = head(key);
  if (!o) throw Error(ErrorKind::kIo, "'" + path_of(key) + "' vanished after writing");
  return *o;
}

Fetched LocalBackend::get_to_fd(const ObjectInfo& expected, int fd) {
  std::string path = path_of(expected.key);
  UniqueFd file = open_read(path);
  int in = file.get();
  Sha256 sha;
  std::uint64_t n = copy_fd(in, fd, &sha, bytes_, options_.cancel, path);
  if (n != expected.size) throw Error(ErrorKind::kTempFail, path + ": file changed while it was copied");
  return Fetched{sha.hex_digest(), Verified::kSizeOnly};
}

std::string LocalBackend::get_bytes(std::string_view key) { return read_file(path_of(key)); }

void LocalBackend::remove(const std::vector<std::string>& keys) {
  for (const auto& k : keys) {
    std::string p = path_of(k);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno(ErrorKind::kIo, "delete", p, errno);
    // Drop directories the deletion emptied, never the root itself.
    fs::path dir = fs::path(p).parent_path();
    std::error_code ec;
    while (dir.string().size() > root_.path.size() && fs::is_empty(dir, ec) && !ec) {
      if (!fs::remove(dir, ec)) break;
      dir = dir.parent_path();
    }
  }
}

std::string LocalBackend::presign(std::string_view, std::chrono::seconds, std::string_view) {
  throw Error(ErrorKind::kUsage, "presign needs an s3:// URL");
}

}  // namespace hf::storage
