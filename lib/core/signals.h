// Cooperative stop requests: SIGTERM / SIGUSR1 / first SIGINT set a flag that long loops poll
// (hf-train finishes its step and checkpoints); a second SIGINT exits at once. SIGPIPE is ignored
// so a closed stdout shows up as EPIPE on write.
#pragma once

namespace hf {

// Requires: called once from main before threads start.
void install_signal_handlers();
// The number of the first stop signal received, or 0.
int stop_signal();
inline bool stop_requested() { return stop_signal() != 0; }

}  // namespace hf
