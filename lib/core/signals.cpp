// Async-signal-safe handlers: they only store to a lock-free atomic (and _exit on a second SIGINT).
#include "core/signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace hf {
namespace {

std::atomic<int> g_stop_signal{0};
std::atomic<int> g_sigint_count{0};

void on_signal(int sig) {
  if (sig == SIGINT && g_sigint_count.fetch_add(1) >= 1) _exit(128 + SIGINT);
  int expected = 0;
  g_stop_signal.compare_exchange_strong(expected, sig);
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaction(sig, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

int stop_signal() { return g_stop_signal.load(std::memory_order_relaxed); }

}  // namespace hf
