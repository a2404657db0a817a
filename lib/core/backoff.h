// The one retry schedule of lib/: exponential back-off with optional "full jitter" (a uniform
// draw below the exponential cap, AWS's recommendation for many clients retrying at once:
// https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), and a sleep that a
// stop request cuts short.
#pragma once

#include <functional>

namespace hf {

struct Backoff {
  double base_s = 0.1;  // delay cap for the first retry; doubled per attempt
  double cap_s = 20.0;  // no delay exceeds this
  bool jitter = true;   // true: uniform in [0, cap of the attempt]; false: the cap itself

  // Delay before retry number `attempt` (0 = the first retry). Thread-safe.
  double delay_s(int attempt) const;
};

// Sleeps `seconds`, waking every few milliseconds to ask `stop` (when given); returns false as
// soon as it answers true, true after the full sleep.
bool sleep_unless(double seconds, const std::function<bool()>& stop = {});

}  // namespace hf
