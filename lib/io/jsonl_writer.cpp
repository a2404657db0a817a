// JsonlWriter and the small output helpers it is built from. stdout failures follow STYLE.md §5:
// EPIPE (the reader went away) is hf::BrokenPipe, which the run wrapper ends quietly on.
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "core/file.h"
#include "io/io.h"

namespace hf::io {
namespace {

constexpr std::size_t kFlushAt = 1 << 20;  // buffer size that triggers a write

template <typename Json>
void dump_line(std::string& out, const Json& value) {
  try {
    out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::type_error& e) {
    throw Error(ErrorKind::kInternal, std::string("JSON output: ") + e.what());
  }
  out += '\n';
}

}  // namespace

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void write_fd(int fd, std::string_view data, const std::string& what) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) throw BrokenPipe(what);
      throw_errno(ErrorKind::kIo, "cannot write", what, errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

struct JsonlWriter::FileSink {
  explicit FileSink(const std::string& path) : file(path) {}
  AtomicFile file;
};

JsonlWriter::JsonlWriter(const std::string& path) : path_(path == "-" ? "<stdout>" : path) {
  if (path != "-") file_ = std::make_unique<FileSink>(path);
  buffer_.reserve(kFlushAt + (kFlushAt >> 2));
}

// Unflushed output is dropped on purpose: a destructor runs during exception unwinding too, and
// must neither throw nor publish a partial result.
JsonlWriter::~JsonlWriter() = default;

void JsonlWriter::write(const nlohmann::ordered_json& value) {
  dump_line(buffer_, value);
  maybe_flush();
}

void JsonlWriter::write(const nlohmann::json& value) {
  dump_line(buffer_, value);
  maybe_flush();
}

void JsonlWriter::write_line(std::string_view json) {
  buffer_ += json;
  buffer_ += '\n';
  maybe_flush();
}

void JsonlWriter::maybe_flush() {
  if (buffer_.size() >= kFlushAt) flush();
}

void JsonlWriter::write_out(std::string_view data) {
  if (file_) {
    file_->file.write(data);
  } else {
    write_fd(1, data, "stdout");
  }
}

void JsonlWriter::flush() {
  if (closed_) throw Error(ErrorKind::kInternal, "JsonlWriter: write after close: " + path_);
  if (!buffer_.empty()) write_out(buffer_);
  buffer_.clear();
}

void JsonlWriter::close() {
  if (closed_) return;
  flush();
  if (file_) file_->file.commit();
  closed_ = true;
}

}  // namespace hf::io
