// Back-off delays and stoppable sleeps (see backoff.h).
#include "core/backoff.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

namespace hf {
namespace {

constexpr int kMaxDoublings = 30;  // 2^30 * any sane base is past every cap
constexpr auto kSleepSlice = std::chrono::milliseconds(20);  // how fast a stop request is seen

}  // namespace

double Backoff::delay_s(int attempt) const {
  double cap = std::min(cap_s, base_s * static_cast<double>(1LL << std::clamp(attempt, 0, kMaxDoublings)));
  if (!jitter || cap <= 0) return std::max(cap, 0.0);
  thread_local std::mt19937 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, cap)(rng);
}

bool sleep_unless(double seconds, const std::function<bool()>& stop) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point until =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(seconds, 0.0)));
  while (true) {
    if (stop && stop()) return false;
    Clock::time_point now = Clock::now();
    if (now >= until) return true;
    std::this_thread::sleep_for(std::min<Clock::duration>(kSleepSlice, until - now));
  }
}

}  // namespace hf
