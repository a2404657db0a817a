// Cooperative stop requests: SIGTERM / SIGUSR1 / first SIGINT set a flag that long loops poll
// (hf-train finishes its step and checkpoints); a second SIGINT exits at once. SIGPIPE is ignored
// so a closed stdout shows up as EPIPE on write.
#pragma once

#include <string>

#include "core/cancel.h"

namespace hf {

// Requires: called once from main before threads start.
void install_signal_handlers();
// The number of the first stop signal received, or 0.
int stop_signal();
inline bool stop_requested() { return stop_signal() != 0; }

// check_stop() throws Cancelled (core/cancel.h) from a loop a stop signal interrupted: every
// frame between the loop and the tool's entry point unwinds, so AtomicFile/AtomicDir drop their
// temps and nothing is committed. Entry points end it with stoppable() below, which the run
// wrapper then turns into exit 128+N. (If one escapes anyway, its kind kTempFail says "retry".)
// Cheap (one relaxed atomic load): call it once per record or per chunk.
inline void check_stop() {
  if (stop_requested()) throw Cancelled("stopped by signal " + std::to_string(stop_signal()));
}
// Runs an entry point's body; a Cancelled out of it becomes `stopped` (the run wrapper maps
// a kOk outcome after a stop signal to 128+N).
template <typename Body>
auto stoppable(const Body& body, decltype(body()) stopped) -> decltype(body()) {
  try {
    return body();
  } catch (const Cancelled&) {
    return stopped;
  }
}

}  // namespace hf
