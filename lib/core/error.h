// Typed errors for every hfkit library: a kind (which decides the exit code, in lib/cli only)
// plus one printable message carrying the context (file:line, field, URL, HTTP status).
// lib/ throws hf::Error and never exits or prints; third-party exceptions are caught where the
// file or line is known and rethrown as hf::Error.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hf {

enum class ErrorKind {
  kUsage,        // bad flags or arguments                       -> 64
  kDataErr,      // malformed input data                          -> 65
  kNoInput,      // an input file or object does not exist        -> 66
  kUnavailable,  // no GPU/driver, endpoint unreachable           -> 69
  kInternal,     // a bug: something nobody expected              -> 70
  kCantCreate,   // cannot create an output                       -> 73
  kIo,           // read/write failure, disk full                 -> 74
  kTempFail,     // retryable: throttled, timed out, preempted    -> 75
  kNoPerm,       // access denied (S3 403 too)                    -> 77
  kConfig,       // bad YAML or an impossible option mix          -> 78
};

// Where an error happened in an input; every part is optional.
struct Where {
  std::string file;            // path, URL or "<stdin>"
  std::int64_t line = 0;       // 1-based; 0 = unknown
  std::string field;           // JSON field / CSV column / tensor name
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  // Formats "file:line: field "f": message", skipping the parts that are empty.
  Error(ErrorKind kind, const Where& where, std::string_view message);

  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// stdout (or another pipe) was closed by the reader, e.g. `hf-predict ... | head`: the run wrapper
// ends the tool quietly with exit 0 instead of reporting an I/O error (ripgrep does the same).
class BrokenPipe : public Error {
 public:
  explicit BrokenPipe(const std::string& what) : Error(ErrorKind::kIo, what + ": broken pipe") {}
};

// How a library entry point that a tool calls ended, when it did not throw: every entry point
// returns this (or a result type the tool turns into it), and lib/cli alone maps it to an exit code.
enum class Outcome {
  kOk,         // done                                                 -> 0
  kNo,         // ran fine, the answer is "no" (gate missed, check failed) -> 1
  kPreempted,  // a stop request ended it after its state was saved (hf-train) -> 75
};

// "file:line: field "f": " prefix (empty when `where` is empty).
std::string format_where(const Where& where);

// errno-style helpers: Error(kIo or kNoInput/kNoPerm by errno) "what 'path': strerror".
[[noreturn]] void throw_errno(ErrorKind fallback, const std::string& what, const std::string& path,
                              int err);

}  // namespace hf
