// Metric gates: "accuracy=0.85,f1_macro=0.8" parsed and checked against a Report — the pipeline's
// go/no-go decision (hf-eval --fail-under / --fail-over, hf-train's metric_for_best_model names).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/error.h"
#include "metrics/metrics.h"

namespace hf::metrics {
namespace {

bool lower_is_better(std::string_view metric) { return metric == "log_loss" || metric == "hamming_loss"; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

const char* flag_name(GateKind kind) { return kind == GateKind::kFailUnder ? "--fail-under" : "--fail-over"; }

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> kNames = {
      "accuracy",        "subset_accuracy", "hamming_loss",       "log_loss",
      "precision_macro", "recall_macro",    "f1_macro",           "precision_micro",
      "recall_micro",    "f1_micro",        "precision_weighted", "recall_weighted",
      "f1_weighted",     "mcc",             "roc_auc",            "average_precision"};
  return kNames;
}

std::vector<Gate> parse_gates(std::string_view spec, GateKind kind) {
  std::vector<Gate> gates;
  if (trim(spec).empty()) return gates;
  const auto& names = metric_names();
  std::size_t start = 0;
  while (start <= spec.size()) {
    std::size_t end = spec.find(',', start);
    if (end == std::string_view::npos) end = spec.size();
    const std::string_view part = trim(spec.substr(start, end - start));
    start = end + 1;
    const std::size_t eq = part.find('=');
    if (part.empty() || eq == std::string_view::npos)
      throw Error(ErrorKind::kUsage, fmt::format("{}: expected METRIC=VALUE, got '{}'", flag_name(kind), part));
    Gate g;
    g.kind = kind;
    g.metric = std::string(trim(part.substr(0, eq)));
    const std::string_view num = trim(part.substr(eq + 1));
    if (std::find(names.begin(), names.end(), g.metric) == names.end())
      throw Error(ErrorKind::kUsage, fmt::format("{}: unknown metric '{}' (known: {})", flag_name(kind),
                                                 g.metric, fmt::join(names, ", ")));
    auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), g.threshold);
    if (num.empty() || ec != std::errc() || ptr != num.data() + num.size() || !std::isfinite(g.threshold))
      throw Error(ErrorKind::kUsage, fmt::format("{}: '{}' is not a number (metric {})", flag_name(kind), num,
                                                 g.metric));
    if (lower_is_better(g.metric) != (kind == GateKind::kFailOver))
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}: {} is {}-is-better; gate it with {}", flag_name(kind), g.metric,
                              lower_is_better(g.metric) ? "lower" : "higher",
                              flag_name(kind == GateKind::kFailUnder ? GateKind::kFailOver : GateKind::kFailUnder)));
    gates.push_back(std::move(g));
    if (end == spec.size()) break;
  }
  return gates;
}

std::vector<GateResult> check_gates(const Report& report, std::span<const Gate> gates) {
  std::vector<GateResult> results;
  for (const Gate& g : gates) {
    const std::optional<double> v = report.value(g.metric);
    if (!v)
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}: metric {} is not available for this input{}", flag_name(g.kind), g.metric,
                              g.metric == "log_loss" ? " (no scores)" : ""));
    GateResult r{g, *v, g.kind == GateKind::kFailUnder ? *v >= g.threshold : *v <= g.threshold};
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace hf::metrics
