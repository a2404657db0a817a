// Byte sources for the readers: mmap for regular files (stdin included when redirected from one),
// 1 MiB block reads for pipes.
#include "io/input.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/signals.h"

namespace hf::io::detail {
namespace {

constexpr std::size_t kBlock = 1 << 20;  // pipe read size; the buffer grows past it for long lines
constexpr std::string_view kBom = "\xEF\xBB\xBF";

}  // namespace

MappedFile::MappedFile(int fd, std::size_t size, const std::string& name) : size_(size) {
  if (size == 0) return;
  addr_ = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr_ == MAP_FAILED) {
    addr_ = nullptr;
    size_ = 0;
    throw_errno(ErrorKind::kIo, "cannot mmap", name, errno);
  }
}

MappedFile::~MappedFile() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

int open_input(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(ErrorKind::kIo, "cannot open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorKind::kNoInput, "cannot open '" + path + "': is a directory");
  }
  return fd;
}

LineSource::LineSource(const std::string& path) {
  if (path == "-") {
    name_ = "<stdin>";
    fd_ = 0;
  } else {
    name_ = path;
    fd_ = open_input(path);
    own_fd_ = true;
  }
  struct stat st {};
  off_t start = 0;
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && (start = ::lseek(fd_, 0, SEEK_CUR)) >= 0 &&
      start <= st.st_size) {
    try {
      map_ = MappedFile(fd_, static_cast<std::size_t>(st.st_size), name_);
    } catch (...) {
      if (own_fd_) ::close(fd_);
      throw;
    }
    if (map_.size() > 0) ::madvise(const_cast<std::byte*>(map_.data()), map_.size(), MADV_SEQUENTIAL);
    mapped_ = true;
    eof_ = true;
    base_ = reinterpret_cast<const char*>(map_.data());
    pos_ = static_cast<std::size_t>(start);
    end_ = map_.size();
  } else {
    buf_.resize(kBlock);
    base_ = buf_.data();
  }
}

LineSource::~LineSource() {
  if (own_fd_) ::close(fd_);
}

bool LineSource::fill() {
  if (eof_) return false;
  // Move the unconsumed tail to the front, then grow if a single line fills the whole buffer.
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
  base_ = buf_.data();
  for (;;) {
    ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n < 0) {
      // A stop signal interrupts a read blocked on a quiet pipe: end here rather than wait for
      // data that may never come (the handlers are installed without SA_RESTART for this).
      if (errno == EINTR) {
        check_stop();
        continue;
      }
      throw_errno(ErrorKind::kIo, "cannot read", name_, errno);
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    end_ += static_cast<std::size_t>(n);
    return true;
  }
}

bool LineSource::next(std::string_view& line) {
  if (first_) {
    first_ = false;
    // Enough bytes to tell whether the input starts with a byte order mark.
    while (!mapped_ && end_ - pos_ < kBom.size() && fill()) {
    }
    if (std::string_view(base_ + pos_, end_ - pos_).starts_with(kBom)) pos_ += kBom.size();
  }
  for (;;) {
    const char* begin = base_ + pos_;
    const std::size_t avail = end_ - pos_;
    const void* nl = scanned_ < avail ? std::memchr(begin + scanned_, '\n', avail - scanned_) : nullptr;
    if (nl != nullptr) {
      const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - begin);
      line = std::string_view(begin, len);
      pos_ += len + 1;
      scanned_ = 0;
      ++line_no_;
      return true;
    }
    scanned_ = avail;
    if (!fill()) {
      if (pos_ == end_) return false;
      line = std::string_view(base_ + pos_, end_ - pos_);
      pos_ = end_;
      scanned_ = 0;
      ++line_no_;
      return true;
    }
  }
}

}  // namespace hf::io::detail
