// Cooperative cancellation: a long operation polls a flag (its own, or the process's stop signal
// via core/signals.h check_stop) and unwinds with the one typed Cancelled error, which callers
// catch by type, never by its message text.
#pragma once

#include <atomic>
#include <string>

#include "core/error.h"

namespace hf {

// A running operation stopped because its cancel flag was set (kTempFail).
class Cancelled : public Error {
 public:
  Cancelled() : Error(ErrorKind::kTempFail, "interrupted") {}
  explicit Cancelled(const std::string& why) : Error(ErrorKind::kTempFail, why) {}
};

// Throws Cancelled when `cancel` is non-null and set.
inline void throw_if_cancelled(const std::atomic<bool>* cancel) {
  if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) throw Cancelled();
}

}  // namespace hf
