// Files: atomic writes (temp in the same directory + fsync + rename, temp removed on failure, so
// a failed run never leaves a half-written or clobbered file), whole-file reads, sha256.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/digest.h"  // Sha256 and sha256_hex lived here; includers still find them

namespace hf {

// Writes `path` atomically. Not copyable; thread-compatible (one writer).
// Usage: AtomicFile f(path); f.write(...); f.commit();  — without commit() nothing appears.
class AtomicFile {
 public:
  // Throws Error(kCantCreate) when the temp file cannot be created.
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

 private:
  void flush_buffer();
  std::string path_;
  std::string temp_;
  int fd_ = -1;
  std::string buffer_;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view content);
// Throws Error(kNoInput) when missing, Error(kIo) otherwise.
std::string read_file(const std::string& path);
// Creates `path` and its parents; throws Error(kCantCreate).
void make_dirs(const std::string& path);

// Hash of a file's contents, read in chunks.
std::string sha256_file(const std::string& path);

}  // namespace hf
