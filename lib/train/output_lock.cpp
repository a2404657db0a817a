// One hf-train per output directory: an flock(2) on output_dir/.hfkit.lock, held for the run. The
// kernel drops it when the process dies however it dies, so there is no stale lock to clean up;
// the file itself is never deleted (deleting a held lock file would let a third run lock a new one).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/log.h"
#include "train/internal.h"

namespace hf::train {

OutputLock::OutputLock(const std::string& dir) : path_((std::filesystem::path(dir) / kLockFile).string()) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_errno(ErrorKind::kCantCreate, "cannot create lock file", path_, errno);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder(256, '\0');
    const ssize_t n = ::pread(fd_, holder.data(), holder.size(), 0);
    holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw_errno(ErrorKind::kIo, "cannot lock", path_, err);
    throw Error(ErrorKind::kTempFail,
                fmt::format("{} is in use by another hf-train ({}); one run per output directory: wait for it or "
                            "choose another --output-dir",
                            dir, holder.empty() ? "holder unknown" : holder));
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string who = fmt::format("pid {} on host {}\n", ::getpid(), host);
  // Who holds it, for the message of a refused run; best effort (the lock is the flock, not this).
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, who.data(), who.size(), 0) < 0)
    log::debug("cannot note the holder in {}: {}", path_, std::strerror(errno));
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace hf::train
