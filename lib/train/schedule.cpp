// HF's learning-rate schedules (transformers.optimization get_*_schedule_with_warmup), as the factor
// LambdaLR multiplies the base rate by.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "train/train.h"

namespace hf::train {

std::int64_t num_warmup_steps(std::int64_t warmup_steps, double warmup_ratio, std::int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<std::int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

double lr_factor(SchedulerType type, std::int64_t step, std::int64_t warmup, std::int64_t total) {
  const auto s = static_cast<double>(step);
  const auto w = static_cast<double>(warmup);
  const auto t = static_cast<double>(total);
  const bool warming = step < warmup;
  const double warm = s / std::max(1.0, w);
  switch (type) {
    case SchedulerType::kConstant: return 1.0;
    case SchedulerType::kConstantWithWarmup: return warming ? warm : 1.0;
    case SchedulerType::kLinear: return warming ? warm : std::max(0.0, (t - s) / std::max(1.0, t - w));
    case SchedulerType::kCosine: {
      if (warming) return warm;
      constexpr double kCycles = 0.5;  // HF's default num_cycles: half a cosine, from 1 down to 0
      const double progress = (s - w) / std::max(1.0, t - w);
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * kCycles * 2.0 * progress)));
    }
  }
  throw Error(ErrorKind::kInternal, "lr_factor: unhandled scheduler type");
}

}  // namespace hf::train
