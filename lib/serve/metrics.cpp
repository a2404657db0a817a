// Prometheus text rendering; latency buckets span a cached answer (1 ms) to a long CPU batch (10 s).
#include "serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace hf::serve {
namespace {

const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, count_);
  const std::string braces = labels.empty() ? "" : fmt::format("{{{}}}", labels);
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, sum_, name, braces, count_);
}

Metrics::Metrics() : batch_size_(kBatchBounds), inference_(kLatencyBounds) {}

void Metrics::request(std::string_view route, int code, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{std::string(route), code}];
  auto it = latency_.try_emplace(std::string(route), kLatencyBounds).first;
  it->second.observe(seconds);
}

void Metrics::batch(std::size_t texts, std::size_t tokens, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  batch_size_.observe(static_cast<double>(texts));
  inference_.observe(seconds);
  tokens_ += tokens;
  texts_ += texts;
  ++batches_;
}

void Metrics::model_loaded(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  load_seconds_ = seconds;
}

std::string Metrics::render(std::size_t queue_depth) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  header(out, "hfkit_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, n] : requests_)
    out += fmt::format("hfkit_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
  header(out, "hfkit_request_duration_seconds", "histogram", "Time from request routing to response.");
  for (const auto& [route, h] : latency_)
    h.render(out, "hfkit_request_duration_seconds", fmt::format("route=\"{}\"", route));
  header(out, "hfkit_batch_size", "histogram", "Texts per forward pass of the dynamic batcher.");
  batch_size_.render(out, "hfkit_batch_size", "");
  header(out, "hfkit_inference_duration_seconds", "histogram", "Time of one batch in the predictor.");
  inference_.render(out, "hfkit_inference_duration_seconds", "");
  header(out, "hfkit_queue_depth", "gauge", "Texts waiting for the inference thread.");
  out += fmt::format("hfkit_queue_depth {}\n", queue_depth);
  header(out, "hfkit_tokens_processed_total", "counter", "Tokens fed to the model (special tokens included).");
  out += fmt::format("hfkit_tokens_processed_total {}\n", tokens_);
  header(out, "hfkit_texts_processed_total", "counter", "Texts predicted.");
  out += fmt::format("hfkit_texts_processed_total {}\n", texts_);
  header(out, "hfkit_model_load_seconds", "gauge", "Time taken to load the model at start-up.");
  out += fmt::format("hfkit_model_load_seconds {}\n", load_seconds_);
  return out;
}

}  // namespace hf::serve
