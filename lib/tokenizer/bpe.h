// The BPE model (internal), as HF tokenizers' models/bpe runs it without dropout: a word is split
// into characters (continuing_subword_prefix on all but the first, end_of_word_suffix on the last,
// each looked up in the vocabulary, else its bytes as "<0xHH>" tokens under byte_fallback, else
// unk_token, fused or not), then merged by rank with HF's own queue discipline (lowest rank first,
// leftmost on ties, stale entries checked by the id they would produce), so that even merge lists
// where two pairs make the same token give HF's ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/wordpiece.h"

namespace hf::tokenizer {

struct BpeConfig {
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // rank = index
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string path;  // for error messages
};

class Bpe {
 public:
  // Throws Error(kConfig) when a merge names a token, or makes one, that the vocabulary lacks.
  explicit Bpe(const BpeConfig& config);

  // Appends the ids of `word` (non-empty, valid UTF-8) to `out`. Throws Error(kConfig) when a
  // character needs unk_token and the vocabulary lacks it (HF fails the same way, at encode time).
  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const;

  std::int32_t token_to_id(std::string_view token) const { return vocab_.find(token); }
  std::string_view id_to_token(std::int32_t id) const;
  std::size_t vocab_size() const { return vocab_.size(); }
  std::int32_t unk_id() const;

 private:
  struct Merge {
    std::uint32_t rank;
    std::int32_t new_id;
  };
  const Merge* find_merge(std::int32_t a, std::int32_t b) const;
  void merge_word(std::string_view word, std::vector<std::int32_t>& out) const;

  VocabMap vocab_;
  std::vector<std::string> id_to_token_;
  // Open addressing on the pair (a, b) packed in 64 bits; key ~0 marks an empty slot.
  std::vector<std::pair<std::uint64_t, Merge>> merges_;
  std::size_t merge_mask_ = 0;
  std::optional<std::string> unk_token_;
  std::string prefix_, suffix_;
  bool fuse_unk_, byte_fallback_, ignore_merges_;
  std::int32_t byte_ids_[256];  // "<0xHH>" ids for byte_fallback, -1 when absent
  std::uint64_t cache_key_;     // identifies this model's entries in the per-thread word cache
};

}  // namespace hf::tokenizer
