// The Unigram model (internal), as HF tokenizers' models/unigram encodes without sampling: the
// best-scoring segmentation (Viterbi, HF's tie rule: the first and shortest candidate keeps a tie)
// over the scored vocabulary, a character no token starts with scored as unk (the lowest score
// minus 10), adjacent unk pieces fused, then each piece's id, its bytes as "<0xHH>" tokens under
// byte_fallback when it is no token, else unk_id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/wordpiece.h"

namespace hf::tokenizer {

struct UnigramConfig {
  std::vector<std::pair<std::string, double>> vocab;  // id = index
  std::optional<std::int32_t> unk_id;
  bool byte_fallback = false;
};

class Unigram {
 public:
  explicit Unigram(const UnigramConfig& config);

  // Appends the ids of `word` (valid UTF-8) to `out`. Throws Error(kDataErr) when a piece needs
  // unk_id and the model has none (HF fails the same way).
  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const;

  std::int32_t token_to_id(std::string_view token) const { return vocab_.find(token); }
  std::string_view id_to_token(std::int32_t id) const;
  std::size_t vocab_size() const { return tokens_.size(); }
  std::int32_t unk_id() const { return unk_id_; }

 private:
  VocabMap vocab_;
  std::vector<std::string> tokens_;
  std::vector<double> scores_;
  std::int32_t unk_id_ = -1;
  double unk_score_ = 0;
  bool byte_fallback_ = false;
  std::int32_t byte_ids_[256];
  std::uint64_t cache_key_;  // this model's entries in the per-thread word cache

  void encode(std::string_view word, std::vector<std::int32_t>& out) const;
};

}  // namespace hf::tokenizer
