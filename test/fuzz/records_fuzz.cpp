// libFuzzer target for the record readers: the input bytes become a file (memfd) read as JSON Lines,
// CSV, TSV and lines, in error and skip mode. Any outcome but a record or an hf::Error is a bug.
// Every record also goes through passthrough output: it must parse back to the same value, and
// reading and writing it again must give the same bytes (numbers, escapes and nesting as read);
// no accepted record is nested deeper than kMaxJsonDepth.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/io.h"

namespace {

// Nesting depth of a parsed value, iteratively (the value may be deep).
int depth_of(const nlohmann::ordered_json& root) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::ordered_json*, int>> stack{{&root, 0}};
  while (!stack.empty()) {
    auto [v, d] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, d + 1);
    for (const auto& child : *v) stack.emplace_back(&child, d + 1);
  }
  return deepest;
}

// The record written as passthrough output, read back as a one-line file, written again.
void check_passthrough(const hf::io::Record& r, hf::io::Format format) {
  using namespace hf::io;
  std::string once;
  append_passthrough(once, r, {}, {});
  if (nlohmann::ordered_json::parse(once) != r.value) __builtin_trap();
  if (format != Format::kJsonl) return;
  if (depth_of(r.value) > kMaxJsonDepth) __builtin_trap();
  int fd = ::memfd_create("again", 0);
  if (fd < 0) return;
  const std::string line = once + "\n";
  if (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
    RecordReader again("/proc/self/fd/" + std::to_string(fd), Format::kJsonl);
    auto back = again.next();
    if (!back) __builtin_trap();
    std::string twice;
    append_passthrough(twice, *back, {}, {});
    if (twice != once || again.next()) __builtin_trap();
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hf::io;
  int fd = ::memfd_create("records", 0);
  if (fd < 0) return 0;
  if (::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  for (Format format : {Format::kJsonl, Format::kCsv, Format::kTsv, Format::kLines}) {
    for (OnBad mode : {OnBad::kError, OnBad::kSkip}) {
      try {
        RecordReader reader(path, format, ReaderOptions{mode, 0});
        std::int64_t last = 0;
        while (auto r = reader.next()) {
          if (r->line <= last || !r->value.is_object()) __builtin_trap();
          last = r->line;
          check_passthrough(*r, format);
          // Every string the reader hands out is valid UTF-8.
          if (format != Format::kJsonl)
            for (const auto& [k, v] : r->value.items())
              if (find_invalid_utf8(k) != std::string_view::npos ||
                  find_invalid_utf8(v.get_ref<const std::string&>()) != std::string_view::npos)
                __builtin_trap();
        }
      } catch (const hf::Error&) {
        if (mode == OnBad::kSkip && format == Format::kLines) __builtin_trap();  // nothing to throw for
      }
    }
  }
  ::close(fd);
  return 0;
}
