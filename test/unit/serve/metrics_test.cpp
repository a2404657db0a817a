// The Prometheus rendering of hf-predict --serve's metrics: cumulative buckets, +Inf, sum and count,
// labels, and the route set bounded by the caller.
#include <doctest/doctest.h>

#include "serve/metrics.h"

namespace hf::serve {

TEST_CASE("histogram buckets are cumulative and end with +Inf") {
  Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 3.0, 9.0}) h.observe(v);
  std::string out;
  h.render(out, "x", "route=\"/p\"");
  CHECK(out ==
        "x_bucket{route=\"/p\",le=\"1\"} 2\n"
        "x_bucket{route=\"/p\",le=\"2\"} 2\n"
        "x_bucket{route=\"/p\",le=\"4\"} 3\n"
        "x_bucket{route=\"/p\",le=\"+Inf\"} 4\n"
        "x_sum{route=\"/p\"} 13.5\n"
        "x_count{route=\"/p\"} 4\n");
  std::string bare;
  Histogram({1}).render(bare, "y", "");
  CHECK(bare == "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n");
}

TEST_CASE("metrics render requests by route and code, batches, tokens and queue depth") {
  Metrics m;
  m.request("/predict", 200, 0.003);
  m.request("/predict", 200, 0.004);
  m.request("/predict", 429, 0.0001);
  m.batch(5, 120, 0.02);
  m.model_loaded(1.5);
  const std::string out = m.render(7);
  CHECK(out.find("hfkit_requests_total{route=\"/predict\",code=\"200\"} 2\n") != std::string::npos);
  CHECK(out.find("hfkit_requests_total{route=\"/predict\",code=\"429\"} 1\n") != std::string::npos);
  CHECK(out.find("hfkit_request_duration_seconds_count{route=\"/predict\"} 3\n") != std::string::npos);
  CHECK(out.find("hfkit_batch_size_bucket{le=\"4\"} 0\nhfkit_batch_size_bucket{le=\"8\"} 1\n") != std::string::npos);
  CHECK(out.find("hfkit_queue_depth 7\n") != std::string::npos);
  CHECK(out.find("hfkit_tokens_processed_total 120\n") != std::string::npos);
  CHECK(out.find("hfkit_model_load_seconds 1.5\n") != std::string::npos);
  CHECK(out.find("# TYPE hfkit_batch_size histogram\n") != std::string::npos);
}

}  // namespace hf::serve
