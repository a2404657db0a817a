// The WordPiece model (internal): greedy longest-match-first over one pre-tokenized word, as HF
// tokenizers' models/wordpiece does it — continuation pieces carry the "##" prefix, a word longer
// than max_input_chars_per_word characters or with any unmatched rest becomes the single unk token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::tokenizer {

// An immutable string -> id map with open addressing. A slot holds the first 7 bytes and the size
// of its key, so keys up to 7 bytes (most of a BERT vocabulary) compare without touching the
// arena of longer keys. Lookups take a string_view and never allocate; concurrent lookups are safe.
class VocabMap {
 public:
  // Later duplicates overwrite earlier ones (as a Rust HashMap insert does).
  void insert(std::string_view key, std::int32_t id);
  void finish();  // call once after the inserts, before any find()
  std::int32_t find(std::string_view key) const;  // -1 when absent
  std::size_t max_key_size() const { return max_key_size_; }
  std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::uint64_t head = 0;    // key bytes 0..6, then min(size, 255) in the top byte
    std::uint32_t offset = 0;  // keys over 7 bytes: arena_[offset] = uint32 size, then the bytes
    std::int32_t id = -1;      // -1: empty slot
  };
  bool same_key(const Slot& s, std::string_view key) const;

  std::vector<std::pair<std::string, std::int32_t>> entries_;  // until finish()
  std::string arena_;
  std::vector<Slot> slots_;
  // One bit per hash value (a one-hash Bloom filter): most absent keys, the common case while
  // WordPiece searches a word's longest piece, are answered from 64 KiB that stay in cache.
  std::vector<std::uint64_t> filter_;
  std::size_t mask_ = 0;
  std::size_t max_key_size_ = 0;
  std::size_t size_ = 0;
};

struct WordPieceConfig {
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  std::size_t max_input_chars_per_word = 100;
};

class WordPiece {
 public:
  // Throws Error(kConfig) when the unk token is not in the vocabulary.
  explicit WordPiece(const WordPieceConfig& config);

  // Appends the ids of `word` (non-empty, valid UTF-8, `n_chars` code points) to `out`.
  void tokenize(std::string_view word, std::size_t n_chars, std::vector<std::int32_t>& out) const;

  std::int32_t token_to_id(std::string_view token) const { return vocab_.find(token); }
  // Empty when the id is unknown.
  std::string_view id_to_token(std::int32_t id) const;
  std::size_t vocab_size() const { return vocab_.size(); }
  std::int32_t unk_id() const { return unk_id_; }
  std::size_t max_input_chars_per_word() const { return max_chars_; }

 private:
  VocabMap vocab_;         // every token, looked up for the first piece of a word
  VocabMap continuation_;  // tokens that start with the prefix, keyed without it
  std::vector<std::string> id_to_token_;
  std::int32_t unk_id_ = -1;
  std::size_t max_chars_ = 100;
};

}  // namespace hf::tokenizer
