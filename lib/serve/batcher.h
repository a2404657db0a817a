// The dynamic batcher: HTTP I/O threads queue requests, one inference thread takes what is waiting
// (up to max_batch_size texts and max_batch_tokens estimated tokens, the first request waiting at
// most max_wait for company) and runs it through the Predictor in one call. The queue is bounded
// in texts so a flood is answered 429 instead of growing memory. Completion is a callback run on
// the inference thread, so a caller never blocks a thread waiting for its answer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "predict/predict.h"
#include "serve/metrics.h"

namespace hf::serve {

struct BatcherOptions {
  std::size_t max_batch_size = 32;
  std::size_t max_batch_tokens = 8192;
  std::chrono::milliseconds max_wait{5};
  std::size_t max_queue = 1024;
  std::size_t max_length = 512;  // the predictor's, caps each text's token estimate
};

class Batcher {
 public:
  enum class Submitted { kQueued, kFull, kStopped };

  // `predictor` and `metrics` must outlive the batcher. Starts the inference thread.
  Batcher(const predict::Predictor& predictor, BatcherOptions options, Metrics& metrics);
  ~Batcher();  // stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Called once, on the inference thread: one Prediction per text, in order, or the exception
  // predict() threw (then the vector is empty). It must be quick (post the work elsewhere).
  using Done = std::function<void(std::exception_ptr, std::vector<predict::Prediction>)>;

  // Queues one request's texts (`pairs` empty, or the second text of each pair). kQueued: `done`
  // will be called. kFull (the queue holds max_queue texts already) and kStopped: it never is.
  // Thread-safe.
  Submitted submit(std::vector<std::string> texts, std::vector<std::string> pairs, Done done);
  std::size_t depth() const;  // texts waiting
  // Stops taking requests, runs everything already queued, joins the thread. Idempotent.
  void stop();

 private:
  struct Job {
    std::vector<std::string> texts, pairs;
    std::size_t tokens = 0;  // estimate
    std::chrono::steady_clock::time_point queued;
    Done done;
  };
  void loop();
  void run(std::vector<std::unique_ptr<Job>>& jobs, bool with_pairs);

  const predict::Predictor& predictor_;
  const BatcherOptions options_;
  Metrics& metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::size_t queued_texts_ = 0, queued_tokens_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace hf::serve
