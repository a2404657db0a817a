// libFuzzer target for the record readers: the input bytes become a file (memfd) read as JSON Lines,
// CSV, TSV and lines, in error and skip mode. Any outcome but a record or an hf::Error is a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/io.h"

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
