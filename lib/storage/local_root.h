// Writing below a local directory without ever leaving it: every path component is opened with
// openat(O_NOFOLLOW | O_DIRECTORY), so a symlink anywhere under the root (planted before or during
// a pull) makes the write fail instead of escaping; files land in a hidden temp file beside their
// target and are renamed into place after the caller verified them. Internal to lib/storage.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/fd.h"

namespace hf::storage {

struct LocalStat {
  bool exists = false;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

// True for names of our temp files (".<name>.hfsync-XXXXXXXX.tmp").
bool is_temp_name(std::string_view file_name);

class LocalRoot {
 public:
  // Opens `path` (created with parents when `create`). Without `create` a missing directory is
  // fine: nothing exists below it. Throws Error(kCantCreate / kNoInput / kDataErr).
  LocalRoot(std::string path, bool create);
  ~LocalRoot();
  LocalRoot(const LocalRoot&) = delete;
  LocalRoot& operator=(const LocalRoot&) = delete;

  const std::string& path() const { return path_; }
  // What is at `rel` now. Throws Error(kDataErr) when a component is a symlink, a parent is not a
  // directory, or `rel` itself is a directory, symlink or special file.
  LocalStat inspect(std::string_view rel) const;

  // A temp file beside `rel` (parent directories created, never through symlinks). Destroying it
  // without commit() removes it.
  class Temp {
   public:
    Temp() = default;
    Temp(Temp&& other) noexcept = default;
    Temp& operator=(Temp&&) = delete;
    ~Temp();
    int fd() const { return fd_.get(); }
    // fsync + rename over the target (never following a symlink at the target). Throws kIo.
    void commit();

   private:
    friend class LocalRoot;
    UniqueFd dir_fd_;
    UniqueFd fd_;  // reset before dir_fd_ on destruction; valid until commit()
    std::string temp_name_, final_name_, display_;
  };
  Temp create_temp(std::string_view rel);
  // Removes the regular file at `rel` (not following symlinks); missing is fine.
  void remove_file(std::string_view rel);

 private:
  // rel's parent directory, or an invalid fd when it does not exist and !create.
  UniqueFd open_parent(std::string_view rel, bool create, std::string* leaf) const;
  std::string path_;
  UniqueFd fd_;
};

}  // namespace hf::storage
