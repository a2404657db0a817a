// Files: atomic writes (temp in the same directory + fsync + rename, temp removed on failure, so
// a failed run never leaves a half-written or clobbered file) of single files and of whole output
// directories, whole-file reads, sha256.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/digest.h"  // Sha256 and sha256_hex lived here; includers still find them

namespace hf {

// Writes `path` atomically. Not copyable; thread-compatible (one writer).
// Usage: AtomicFile f(path); f.write(...); f.commit();  — without commit() nothing appears.
// Only a regular file is ever replaced (STYLE.md §12, as rsync and coreutils check S_ISREG):
//   - a symlink is followed (chains too, dangling ones to the file they name) and its final
//     target is replaced; the link itself stays;
//   - an existing FIFO, device or socket (/dev/null, /dev/stdout, a named pipe a downstream job
//     reads) is opened and written through: data reaches it as it is flushed, so for these the
//     "nothing appears without commit()" guarantee cannot hold;
//   - a directory is refused (kCantCreate).
class AtomicFile {
 public:
  // Throws Error(kCantCreate) when the temp file cannot be created (or the special file opened).
  // Opening a FIFO blocks until it has a reader, as a shell redirection does.
  explicit AtomicFile(std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // removes the temp file if commit() did not run

  // Buffered; throws Error(kIo) on failure (disk full included).
  void write(const void* data, std::size_t size);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // Flush, fsync, rename over `path`, fsync the directory. Throws Error(kIo).
  void commit();
  const std::string& path() const { return path_; }
  // True when `path` is not a regular file and is written through (see above).
  bool writes_through() const { return temp_.empty(); }

 private:
  void flush_buffer();
  std::string path_;    // as given, for messages
  std::string target_;  // the regular file replaced at commit (symlinks resolved)
  std::string temp_;    // empty when writing through
  int fd_ = -1;
  std::string buffer_;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view content);
// Throws Error(kNoInput) when missing, Error(kIo) otherwise.
std::string read_file(const std::string& path);
// Creates `path` and its parents; throws Error(kCantCreate).
void make_dirs(const std::string& path);

// True when `name` may become one path component: 1 to kMaxNameLength characters of
// [A-Za-z0-9_.-], not starting with '.' (so no "..", no hidden files, no '/'). Names that come from
// data or flags (split names, ...) are checked with this before they are joined to a directory.
inline constexpr std::size_t kMaxNameLength = 64;
bool is_safe_name(std::string_view name);

// Builds a directory of outputs as one unit (STYLE.md §12): files are written into a temp
// directory beside `path` (same filesystem), and commit() swaps it in with one atomic
// renameat2(RENAME_EXCHANGE) — two renames where the filesystem lacks it — then removes the old
// directory. Until commit() returns the old `path` is untouched; without commit() (an error, a
// signal) the temp directory is removed and `path` is as it was.
// `path` must be absent, an empty directory, or a directory holding `marker` (a file the
// previous run of the same tool wrote, e.g. dataset.json): anything else is refused with
// Error(kCantCreate) so that a mistyped --output never deletes a user's directory.
// Not copyable; one writer.
class AtomicDir {
 public:
  // Creates the parents and the temp directory. Throws Error(kCantCreate).
  AtomicDir(std::string path, const std::string& marker);
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  ~AtomicDir();  // removes the temp directory if commit() did not run

  // The directory to write the outputs into (the temp directory).
  const std::string& temp_path() const { return temp_; }
  const std::string& path() const { return path_; }
  // Swaps the temp directory in and removes the old one. Throws Error(kIo).
  void commit();

 private:
  std::string path_;
  std::string temp_;
  bool committed_ = false;
};

// Hash of a file's contents, read in chunks.
std::string sha256_file(const std::string& path);

}  // namespace hf
