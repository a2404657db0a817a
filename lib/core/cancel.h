// Cooperative cancellation: a long operation polls a flag (set from a stop signal) and unwinds with
// the typed Cancelled error, which callers catch by type, never by its message text.
#pragma once

#include <atomic>

#include "core/error.h"

namespace hf {

// A running operation stopped because its cancel flag was set (kTempFail).
class Cancelled : public Error {
 public:
  Cancelled() : Error(ErrorKind::kTempFail, "interrupted") {}
};

// Throws Cancelled when `cancel` is non-null and set.
inline void throw_if_cancelled(const std::atomic<bool>* cancel) {
  if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) throw Cancelled();
}

}  // namespace hf
