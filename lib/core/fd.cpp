// UniqueFd's close, kept out of the header so <unistd.h> stays out of every includer.
#include "core/fd.h"

#include <unistd.h>

namespace hf {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace hf
