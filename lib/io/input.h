// Internal to lib/io: byte sources. MappedFile is a read-only mmap of a whole file (RAII);
// LineSource hands out '\n'-terminated lines of a file or stdin without copying when the input is
// a regular file (mmap) and with one growing block buffer when it is a pipe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hf::io::detail {

// A read-only private mapping of a whole file; empty files map to an empty span.
class MappedFile {
 public:
  MappedFile() = default;
  // Maps fd from byte 0; `name` is for error messages. Throws Error(kIo).
  MappedFile(int fd, std::size_t size, const std::string& name);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return static_cast<const std::byte*>(addr_); }
  std::size_t size() const { return size_; }

 private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

// Opens `path` read-only ("-" is not handled here). Throws Error(kNoInput) if it is missing or a
// directory, kNoPerm, kIo. Returns an owned fd.
int open_input(const std::string& path);

class LineSource {
 public:
  // "-" reads stdin (named "<stdin>" in messages).
  explicit LineSource(const std::string& path);
  ~LineSource();
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  // The next line without its '\n' (a UTF-8 BOM at the very start is dropped). The view is valid
  // until the next call. Returns false at the end; a final line without '\n' is still a line, the
  // empty remainder after a final '\n' is not. Throws Error(kIo) on read failure.
  bool next(std::string_view& line);
  // 1-based number of the line last returned.
  std::int64_t line_number() const { return line_no_; }
  const std::string& name() const { return name_; }

 private:
  bool fill();  // stream mode: read more; false at EOF

  std::string name_;
  int fd_ = -1;
  bool own_fd_ = false;
  std::int64_t line_no_ = 0;
  MappedFile map_;
  // The bytes not yet handed out: [pos_, end_) of either the mapping or buf_.
  const char* base_ = nullptr;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  std::size_t scanned_ = 0;  // stream mode: bytes after pos_ already known to hold no '\n'
  bool mapped_ = false;
  bool eof_ = false;
  bool first_ = true;
  std::vector<char> buf_;
};

}  // namespace hf::io::detail
