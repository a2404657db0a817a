// An owned file descriptor: closed on destruction, movable, never copied. lib/ holds every fd it
// opens in one of these instead of closing by hand on each exit path.
#pragma once

#include <utility>

namespace hf {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  // Gives up ownership: the caller closes the returned fd.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the held fd (errors ignored: a read-only or already-synced fd has nothing to lose) and
  // takes `fd`. Code that must see close()'s result calls ::close(release()) itself.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

}  // namespace hf
