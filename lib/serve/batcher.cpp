// The batcher's inference thread. Requests with text pairs and single texts run as separate
// predict() calls of the same round (the Predictor takes one kind per call).
#include "serve/batcher.h"

#include <algorithm>

namespace hf::serve {
namespace {

// Tokens are only known after tokenizing, which the Predictor does inside predict(); English
// WordPiece averages about 4 UTF-8 bytes per token, so bytes / 4 + the special tokens is the
// budget's estimate, capped at the predictor's max_length.
constexpr std::size_t kBytesPerToken = 4;
constexpr std::size_t kSpecialTokens = 3;

std::size_t estimate_tokens(const std::string& text, const std::string* pair, std::size_t max_length) {
  std::size_t bytes = text.size() + (pair ? pair->size() : 0);
  return std::min(max_length, bytes / kBytesPerToken + kSpecialTokens);
}

}  // namespace

Batcher::Batcher(const predict::Predictor& predictor, BatcherOptions options, Metrics& metrics)
    : predictor_(predictor), options_(options), metrics_(metrics) {
  thread_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() { stop(); }

Batcher::Submitted Batcher::submit(std::vector<std::string> texts, std::vector<std::string> pairs, Done done) {
  auto job = std::make_unique<Job>();
  for (std::size_t i = 0; i < texts.size(); ++i)
    job->tokens += estimate_tokens(texts[i], pairs.empty() ? nullptr : &pairs[i], options_.max_length);
  job->texts = std::move(texts);
  job->pairs = std::move(pairs);
  job->done = std::move(done);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Submitted::kStopped;
    if (queued_texts_ + job->texts.size() > options_.max_queue) return Submitted::kFull;
    job->queued = std::chrono::steady_clock::now();
    queued_texts_ += job->texts.size();
    queued_tokens_ += job->tokens;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return Submitted::kQueued;
}

std::size_t Batcher::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_texts_;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Batcher::loop() {
  std::vector<std::unique_ptr<Job>> singles, pairs;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      // Company: wait until the batch is full or the oldest request waited max_wait.
      const auto deadline = queue_.front()->queued + options_.max_wait;
      cv_.wait_until(lock, deadline, [&] {
        return stopping_ || queued_texts_ >= options_.max_batch_size || queued_tokens_ >= options_.max_batch_tokens;
      });
      std::size_t texts = 0, tokens = 0;
      // Always take at least one request, even one larger than the budget (the Predictor splits
      // it into batch_size chunks itself).
      while (!queue_.empty()) {
        Job& j = *queue_.front();
        if (texts > 0 && (texts + j.texts.size() > options_.max_batch_size ||
                          tokens + j.tokens > options_.max_batch_tokens))
          break;
        texts += j.texts.size();
        tokens += j.tokens;
        queued_texts_ -= j.texts.size();
        queued_tokens_ -= j.tokens;
        (j.pairs.empty() ? singles : pairs).push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (!singles.empty()) run(singles, false);
    if (!pairs.empty()) run(pairs, true);
    singles.clear();
    pairs.clear();
  }
}

void Batcher::run(std::vector<std::unique_ptr<Job>>& jobs, bool with_pairs) {
  std::vector<std::string_view> texts, pairs;
  for (const auto& j : jobs) {
    texts.insert(texts.end(), j->texts.begin(), j->texts.end());
    if (with_pairs) pairs.insert(pairs.end(), j->pairs.begin(), j->pairs.end());
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<predict::Prediction> all;
  try {
    all = predictor_.predict(texts, pairs);
  } catch (...) {
    for (auto& j : jobs) j->done(std::current_exception(), {});
    return;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::size_t tokens = 0;
  for (const auto& p : all) tokens += p.tokens;
  metrics_.batch(texts.size(), tokens, seconds);
  std::size_t at = 0;
  for (auto& j : jobs) {
    const auto n = j->texts.size();
    j->done(nullptr, std::vector<predict::Prediction>(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(at)),
                                                       std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(at + n))));
    at += n;
  }
}

}  // namespace hf::serve
