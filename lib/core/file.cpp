// Atomic writes follow leveldb's SetCurrentFile: write a temp name, fsync, rename, fsync dir.
#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

void fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return;  // best effort: some filesystems do not allow opening directories
  ::fsync(fd.get());
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::random_device rd;
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    temp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd() % 1000000);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) throw_errno(ErrorKind::kCantCreate, "cannot create", path_, errno);
  }
  if (fd_ < 0) throw Error(ErrorKind::kCantCreate, "cannot create a temp file for '" + path_ + "'");
  buffer_.reserve(kBufferSize);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
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
  flush_buffer();
  if (::fsync(fd_) != 0) throw_errno(ErrorKind::kIo, "cannot fsync", path_, errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw_errno(ErrorKind::kIo, "cannot close", path_, errno);
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), path_.c_str()) != 0) throw_errno(ErrorKind::kIo, "cannot rename into", path_, errno);
  committed_ = true;
  fsync_dir(dir_of(path_));
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
