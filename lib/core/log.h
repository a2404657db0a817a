// Leveled logging to stderr (stdout is reserved for data). Text or JSON lines; the level is
// checked before formatting. Thread-safe: each record is written with one write(2).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace hf::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };
enum class Format { kText, kJson };

// Requires: called once at start-up, before other threads log. `program` prefixes text lines.
void configure(std::string program, Level level, Format format);
// Lowers the level to `most` when it is above it (a data-parallel replica that only warns); safe
// while other threads log.
void limit_level(Level most);
Level level();
bool enabled(Level level);
// True when stderr is a terminal (progress bars and colours only then).
bool stderr_is_tty();
void write(Level level, std::string_view message);

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kError)) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kWarn)) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kInfo)) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kDebug)) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}

// A one-line progress display on a TTY (carriage return, throttled to ~10 Hz); silent otherwise
// or when the level is below info. finish() clears the line.
class Progress {
 public:
  Progress(std::string label, std::uint64_t total);  // total 0 = unknown
  void update(std::uint64_t done);
  void finish();
  ~Progress();

 private:
  std::string label_;
  std::uint64_t total_;
  bool active_;
  double start_;
  double last_ = 0;
};

}  // namespace hf::log
