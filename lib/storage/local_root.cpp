// Symlink-proof writes below a local root (see local_root.h).
#include "storage/local_root.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "core/error.h"
#include "core/file.h"

namespace hf::storage {
namespace {

constexpr std::size_t kMaxTempStem = 200;  // keeps temp names under NAME_MAX (255)

std::string random_hex(int n) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s += kHex[rng() & 15];
  return s;
}

[[noreturn]] void refuse(std::string_view rel, const std::string& why) {
  throw Error(ErrorKind::kDataErr, "refusing to write '" + std::string(rel) + "': " + why);
}

}  // namespace

bool is_temp_name(std::string_view name) {
  return name.size() > 20 && name.front() == '.' && name.substr(name.size() - 4) == ".tmp" &&
         name.find(".hfsync-") != std::string_view::npos;
}

LocalRoot::LocalRoot(std::string path, bool create) : path_(std::move(path)) {
  if (create) make_dirs(path_);
  fd_.reset(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd_.valid()) {
    if (errno == ENOENT && !create) return;
    if (errno == ENOTDIR) throw Error(ErrorKind::kCantCreate, "'" + path_ + "' is not a directory");
    throw_errno(ErrorKind::kCantCreate, "open directory", path_, errno);
  }
}

LocalRoot::~LocalRoot() = default;

UniqueFd LocalRoot::open_parent(std::string_view rel, bool create, std::string* leaf) const {
  if (!fd_.valid()) return UniqueFd();
  UniqueFd dir(::dup(fd_.get()));
  if (!dir.valid()) throw_errno(ErrorKind::kIo, "dup", path_, errno);
  std::size_t start = 0;
  while (true) {
    std::size_t slash = rel.find('/', start);
    if (slash == std::string_view::npos) {
      *leaf = std::string(rel.substr(start));
      return dir;
    }
    std::string comp(rel.substr(start, slash - start));
    int next = ::openat(dir.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(dir.get(), comp.c_str(), 0777) != 0 && errno != EEXIST) {
        int e = errno;
        throw_errno(ErrorKind::kCantCreate, "create directory", path_ + "/" + std::string(rel.substr(0, slash)), e);
      }
      next = ::openat(dir.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    int e = errno;
    dir.reset(next);
    if (next < 0) {
      if (e == ENOENT) return UniqueFd();
      if (e == ELOOP) refuse(rel, "'" + std::string(rel.substr(0, slash)) + "' is a symlink");
      if (e == ENOTDIR) refuse(rel, "'" + std::string(rel.substr(0, slash)) + "' is not a directory");
      throw_errno(ErrorKind::kIo, "open directory", path_ + "/" + std::string(rel.substr(0, slash)), e);
    }
    start = slash + 1;
  }
}

LocalStat LocalRoot::inspect(std::string_view rel) const {
  LocalStat out;
  std::string leaf;
  UniqueFd dir = open_parent(rel, false, &leaf);
  if (!dir.valid()) return out;
  struct stat st{};
  int rc = ::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW);
  int e = errno;
  if (rc != 0) {
    if (e == ENOENT) return out;
    throw_errno(ErrorKind::kIo, "stat", path_ + "/" + std::string(rel), e);
  }
  if (S_ISLNK(st.st_mode)) refuse(rel, "it is a symlink");
  if (S_ISDIR(st.st_mode)) refuse(rel, "it is a directory");
  if (!S_ISREG(st.st_mode)) refuse(rel, "it is not a regular file");
  out.exists = true;
  out.size = static_cast<std::uint64_t>(st.st_size);
  out.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return out;
}

LocalRoot::Temp LocalRoot::create_temp(std::string_view rel) {
  if (!fd_.valid()) throw Error(ErrorKind::kCantCreate, "'" + path_ + "' does not exist");
  Temp t;
  t.dir_fd_ = open_parent(rel, true, &t.final_name_);
  if (!t.dir_fd_.valid()) throw Error(ErrorKind::kCantCreate, "cannot create parent of '" + std::string(rel) + "'");
  t.display_ = path_ + "/" + std::string(rel);
  for (int tries = 0; tries < 8; ++tries) {
    t.temp_name_ = "." + t.final_name_.substr(0, kMaxTempStem) + ".hfsync-" + random_hex(8) + ".tmp";
    t.fd_.reset(::openat(t.dir_fd_.get(), t.temp_name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (t.fd_.valid() || errno != EEXIST) break;
  }
  if (!t.fd_.valid()) throw_errno(ErrorKind::kCantCreate, "create temp file for", t.display_, errno);
  return t;
}

LocalRoot::Temp::~Temp() {
  if (fd_.valid()) {  // not committed
    fd_.reset();
    ::unlinkat(dir_fd_.get(), temp_name_.c_str(), 0);
  }
}

void LocalRoot::Temp::commit() {
  if (::fsync(fd_.get()) != 0) throw_errno(ErrorKind::kIo, "fsync", display_, errno);
  // renameat replaces a symlink at the target rather than following it; inspect() already
  // refused that case, this keeps a race from escaping the root.
  if (::renameat(dir_fd_.get(), temp_name_.c_str(), dir_fd_.get(), final_name_.c_str()) != 0)
    throw_errno(ErrorKind::kIo, "rename into", display_, errno);
  fd_.reset();
}

void LocalRoot::remove_file(std::string_view rel) {
  std::string leaf;
  UniqueFd dir = open_parent(rel, false, &leaf);
  if (!dir.valid()) return;
  struct stat st{};
  if (::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
    if (::unlinkat(dir.get(), leaf.c_str(), 0) != 0 && errno != ENOENT)
      throw_errno(ErrorKind::kIo, "delete", path_ + "/" + std::string(rel), errno);
  }
}

}  // namespace hf::storage
