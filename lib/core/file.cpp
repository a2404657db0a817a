// Atomic writes follow leveldb's SetCurrentFile: write a temp name, fsync, rename, fsync dir;
// what counts as "the file to replace" follows rsync/coreutils (regular files only).
#include "core/file.h"

#include <fcntl.h>
#include <linux/limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/fd.h"

namespace hf {
namespace {

constexpr std::size_t kBufferSize = 1 << 20;  // 1 MiB write buffer

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// "<path><infix><pid>.<random>": unique enough with O_EXCL / mkdir retries on a clash.
std::string temp_name(const std::string& path, const char* infix) {
  static thread_local std::random_device rd;
  return path + infix + std::to_string(::getpid()) + "." + std::to_string(rd() % 1000000);
}

constexpr int kMaxSymlinkHops = 40;  // Linux's own limit (MAXSYMLINKS)

// Where an output named `path` goes. `through`: an existing non-regular file (FIFO, device,
// socket, /dev/stdout) to open and write into. Otherwise `file` is the regular file to replace
// or create: symlinks are followed by hand, because realpath() fails on a dangling link while a
// shell's `>` creates the file the link names.
struct OutputTarget {
  std::string file;
  bool through = false;
};

OutputTarget resolve_output(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw Error(ErrorKind::kCantCreate, "cannot create '" + path + "': is a directory");
    if (!S_ISREG(st.st_mode)) return {path, true};
  } else if (errno != ENOENT) {
    throw_errno(ErrorKind::kCantCreate, "cannot create", path, errno);
  }
  std::string cur = path;
  for (int hop = 0; hop < kMaxSymlinkHops; ++hop) {
    struct stat lst {};
    if (::lstat(cur.c_str(), &lst) != 0 || !S_ISLNK(lst.st_mode)) return {cur, false};
    std::string link(PATH_MAX, '\0');
    ssize_t n = ::readlink(cur.c_str(), link.data(), link.size());
    if (n < 0) throw_errno(ErrorKind::kCantCreate, "cannot read the link", cur, errno);
    link.resize(static_cast<std::size_t>(n));
    cur = !link.empty() && link.front() == '/' ? link : dir_of(cur) + "/" + link;
  }
  throw Error(ErrorKind::kCantCreate, "cannot create '" + path + "': too many levels of symbolic links");
}

void fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return;  // best effort: some filesystems do not allow opening directories
  ::fsync(fd.get());
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  OutputTarget target = resolve_output(path_);
  target_ = std::move(target.file);
  if (target.through) {
    do {
      fd_ = ::open(target_.c_str(), O_WRONLY | O_CLOEXEC);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) throw_errno(ErrorKind::kCantCreate, "cannot open", path_, errno);
  }
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    temp_ = temp_name(target_, ".tmp.");
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) throw_errno(ErrorKind::kCantCreate, "cannot create", path_, errno);
  }
  if (fd_ < 0) throw Error(ErrorKind::kCantCreate, "cannot create a temp file for '" + path_ + "'");
  buffer_.reserve(kBufferSize);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void AtomicFile::flush_buffer() {
  const char* p = buffer_.data();
  std::size_t left = buffer_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(ErrorKind::kIo, "cannot write", path_, errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  buffer_.clear();
}

void AtomicFile::write(const void* data, std::size_t size) {
  if (committed_) throw Error(ErrorKind::kInternal, "write after commit: " + path_);
  if (buffer_.size() + size > kBufferSize) flush_buffer();
  if (size >= kBufferSize) {
    buffer_.assign(static_cast<const char*>(data), size);
    flush_buffer();
    return;
  }
  buffer_.append(static_cast<const char*>(data), size);
}

void AtomicFile::commit() {
  if (committed_) return;
  flush_buffer();
  // A pipe or a character device has nothing to sync (fsync fails with EINVAL there).
  if (!writes_through() && ::fsync(fd_) != 0) throw_errno(ErrorKind::kIo, "cannot fsync", path_, errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw_errno(ErrorKind::kIo, "cannot close", path_, errno);
  }
  fd_ = -1;
  if (writes_through()) {
    committed_ = true;
    return;
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) throw_errno(ErrorKind::kIo, "cannot rename into", path_, errno);
  committed_ = true;
  fsync_dir(dir_of(target_));
}

void write_file_atomic(const std::string& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

std::string read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw_errno(ErrorKind::kIo, "cannot open", path, errno);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;  // building the message may clobber errno
      throw_errno(ErrorKind::kIo, "cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

void make_dirs(const std::string& path) {
  std::string cur;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      throw_errno(ErrorKind::kCantCreate, "cannot create directory", cur, errno);
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(ErrorKind::kCantCreate, "not a directory: '" + path + "'");
}

bool is_safe_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

AtomicDir::AtomicDir(std::string path, const std::string& marker) : path_(std::move(path)) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    // A link to a directory: the directory is what gets replaced, the link stays.
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      auto real = std::filesystem::canonical(path_, ec);
      if (ec) throw Error(ErrorKind::kCantCreate, "cannot create '" + path_ + "': " + ec.message());
      path_ = real.string();
      ::stat(path_.c_str(), &st);
    }
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorKind::kCantCreate, "cannot create '" + path_ + "': not a directory");
    std::error_code ec;
    const bool empty = std::filesystem::is_empty(path_, ec);
    if (ec) throw Error(ErrorKind::kCantCreate, "cannot read '" + path_ + "': " + ec.message());
    if (!empty && ::access((path_ + "/" + marker).c_str(), F_OK) != 0)
      throw Error(ErrorKind::kCantCreate, "'" + path_ + "' is not empty and holds no " + marker +
                                              ": refusing to replace it (give a new or empty directory)");
  } else if (errno != ENOENT) {
    throw_errno(ErrorKind::kCantCreate, "cannot create", path_, errno);
  }
  const std::string parent = dir_of(path_);
  make_dirs(parent);
  const std::string base = path_.substr(path_.rfind('/') == std::string::npos ? 0 : path_.rfind('/') + 1);
  for (int attempt = 0; attempt < 16 && temp_.empty(); ++attempt) {
    std::string name = temp_name(parent + "/." + base, ".tmp.");
    if (::mkdir(name.c_str(), 0755) == 0) temp_ = std::move(name);
    else if (errno != EEXIST) throw_errno(ErrorKind::kCantCreate, "cannot create a temp directory for", path_, errno);
  }
  if (temp_.empty()) throw Error(ErrorKind::kCantCreate, "cannot create a temp directory for '" + path_ + "'");
}

AtomicDir::~AtomicDir() {
  std::error_code ec;
  if (!committed_) std::filesystem::remove_all(temp_, ec);
}

void AtomicDir::commit() {
  if (committed_) return;
  fsync_dir(temp_);
  // Exchange when `path_` exists: readers see the old or the new directory, never neither.
  if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) == 0) {
    committed_ = true;
    fsync_dir(dir_of(path_));
    std::error_code ec;
    std::filesystem::remove_all(temp_, ec);  // now the old directory; best effort
    return;
  }
  if (errno == ENOENT) {
    if (::rename(temp_.c_str(), path_.c_str()) != 0) throw_errno(ErrorKind::kIo, "cannot rename into", path_, errno);
  } else {
    // No RENAME_EXCHANGE on this filesystem: move the old one aside first, then put it back on failure.
    const std::string old = temp_ + ".old";
    if (::rename(path_.c_str(), old.c_str()) != 0) throw_errno(ErrorKind::kIo, "cannot move aside", path_, errno);
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      ::rename(old.c_str(), path_.c_str());
      throw_errno(ErrorKind::kIo, "cannot rename into", path_, err);
    }
    std::error_code ec;
    std::filesystem::remove_all(old, ec);
  }
  committed_ = true;
  fsync_dir(dir_of(path_));
}

std::string sha256_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw_errno(ErrorKind::kIo, "cannot open", path, errno);
  Sha256 h;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;  // building the message may clobber errno
      throw_errno(ErrorKind::kIo, "cannot read", path, err);
    }
    if (n == 0) break;
    h.update(buf, static_cast<std::size_t>(n));
  }
  return h.hex_digest();
}

}  // namespace hf
