// stderr logger: "program: level: message" or one JSON object per line.
#include "core/log.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

namespace hf::log {
namespace {

std::string g_program = "hfkit";
// Atomic: limit_level may run while other threads log.
std::atomic<Level> g_level{Level::kInfo};
Format g_format = Format::kText;

const char* level_name(Level level) {
  switch (level) {
    case Level::kError: return "error";
    case Level::kWarn: return "warning";
    case Level::kInfo: return "info";
    case Level::kDebug: return "debug";
  }
  return "info";
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

void write_all(const std::string& s) {
  // One write(2) per record so concurrent threads do not interleave within a line.
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;  // stderr gone: nothing sensible to do
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

void configure(std::string program, Level level, Format format) {
  g_program = std::move(program);
  g_level = level;
  g_format = format;
}

void limit_level(Level most) {
  Level now = g_level.load();
  while (static_cast<int>(now) > static_cast<int>(most) && !g_level.compare_exchange_weak(now, most)) {
  }
}

Level level() { return g_level.load(std::memory_order_relaxed); }
bool enabled(Level level) { return static_cast<int>(level) <= static_cast<int>(g_level.load(std::memory_order_relaxed)); }
bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

void write(Level level, std::string_view message) {
  std::string line;
  if (g_format == Format::kJson) {
    nlohmann::json j = {{"program", g_program}, {"level", level_name(level)},
                        {"message", std::string(message)}};
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } else {
    line = fmt::format("{}: {}: {}\n", g_program, level_name(level), message);
  }
  write_all(line);
}

Progress::Progress(std::string label, std::uint64_t total)
    : label_(std::move(label)),
      total_(total),
      active_(stderr_is_tty() && enabled(Level::kInfo) && g_format == Format::kText),
      start_(now_seconds()) {}

void Progress::update(std::uint64_t done) {
  if (!active_) return;
  double t = now_seconds();
  if (t - last_ < 0.1) return;
  last_ = t;
  double rate = done / std::max(t - start_, 1e-9);
  std::string s;
  if (total_ > 0) {
    double eta = (total_ - std::min(done, total_)) / std::max(rate, 1e-9);
    s = fmt::format("\r{}: {}/{} ({:.0f}%) {:.0f}/s ETA {:.0f}s\x1b[K", label_, done, total_,
                    100.0 * done / total_, rate, eta);
  } else {
    s = fmt::format("\r{}: {} {:.0f}/s\x1b[K", label_, done, rate);
  }
  write_all(s);
}

void Progress::finish() {
  if (!active_) return;
  write_all("\r\x1b[K");
  active_ = false;
}

Progress::~Progress() { finish(); }

}  // namespace hf::log
