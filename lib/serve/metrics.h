// Prometheus metrics of hf-predict --serve, rendered in the text exposition format
// (https://prometheus.io/docs/instrumenting/exposition_formats/): requests by route and code,
// request latency and batch size histograms, queue depth, tokens processed, model load time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::serve {

// A cumulative histogram over fixed upper bounds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // The _bucket, _sum and _count lines of `name`, with `labels` ("" or `route="/ping"`).
  void render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bound, not cumulative; one more for +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// Thread-safe (one mutex: updates are a few additions).
class Metrics {
 public:
  Metrics();
  // `route` is one of the server's routes or "other", so unknown paths cannot grow the label set.
  void request(std::string_view route, int code, double seconds);
  void batch(std::size_t texts, std::size_t tokens, double seconds);
  void model_loaded(double seconds);
  std::string render(std::size_t queue_depth) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  Histogram batch_size_;
  Histogram inference_;
  std::uint64_t tokens_ = 0, texts_ = 0, batches_ = 0;
  double load_seconds_ = 0;
};

}  // namespace hf::serve
