// A tokenizer.json pipeline giving bit-for-bit the ids of Hugging Face `tokenizers` (0.23): added /
// special tokens split out of the raw text (lstrip, rstrip, single_word, normalized); normalizers
// BertNormalizer, NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents, Replace (string or regex),
// Prepend, Precompiled (sentencepiece charsmaps), Sequence; pre-tokenizers BertPreTokenizer,
// ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Punctuation, Digits, Split (string or regex),
// CharDelimiterSplit, Sequence; models WordPiece, BPE (dropout off), Unigram; post-processors
// TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel; truncation and padding.
// Spec: https://huggingface.co/docs/tokenizers/pipeline. Any other component or option is refused
// at load time, naming it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hf {
class ThreadPool;
}

namespace hf::tokenizer {

// Which sequence of a pair loses tokens when it is too long (HF TruncationStrategy).
enum class Truncation { kLongestFirst, kOnlyFirst, kOnlySecond };
// kLongest pads a batch to its longest encoding; kMaxLength pads to EncodeOptions::max_length.
enum class Padding { kNone, kLongest, kMaxLength };

struct EncodeOptions {
  std::size_t max_length = 0;  // total length, special tokens included; 0 = no truncation
  Truncation truncation = Truncation::kLongestFirst;
  Padding padding = Padding::kNone;
};

struct Encoding {
  std::vector<std::int32_t> ids;       // special tokens included, padding last
  std::vector<std::int32_t> type_ids;  // same size: 0 for the first sequence, 1 for the second
  std::size_t length = 0;              // ids before padding (the attention mask is 1 on [0, length))
  bool truncated = false;              // tokens were cut to respect max_length
};

// Immutable once loaded: every const method may be called from many threads at once. Copies
// are cheap and share the loaded vocabulary.
class Tokenizer {
 public:
  // `path`: a tokenizer.json, a vocab.txt (tokenizer_config.json beside it is read for
  // do_lower_case / strip_accents / tokenize_chinese_chars / special tokens), or a model directory
  // holding either (tokenizer.json preferred). Throws Error(kNoInput) when missing, Error(kConfig)
  // when malformed or unsupported ("unsupported model type WordLevel").
  static Tokenizer load(const std::string& path);

  // Throws Error(kDataErr) on invalid UTF-8, and where HF refuses to truncate: only_first /
  // only_second when that sequence is too short to remove enough tokens, only_second without a pair.
  Encoding encode(std::string_view text, const EncodeOptions& options = {}) const;
  Encoding encode_pair(std::string_view first, std::string_view second, const EncodeOptions& options = {}) const;
  // In parallel on `pool` when given (else on the calling thread); results in input order.
  // Padding::kLongest pads to the longest of the batch. Rethrows the first error.
  std::vector<Encoding> encode_batch(std::span<const std::string_view> texts, const EncodeOptions& options,
                                     ThreadPool* pool = nullptr) const;
  // Requires: first.size() == second.size().
  std::vector<Encoding> encode_batch(std::span<const std::string_view> first, std::span<const std::string_view> second,
                                     const EncodeOptions& options, ThreadPool* pool = nullptr) const;

  std::size_t vocab_size() const;
  std::int32_t token_to_id(std::string_view token) const;  // -1 when unknown
  std::string id_to_token(std::int32_t id) const;          // empty when unknown
  std::int32_t pad_id() const;  // -1 when the tokenizer has no pad token
  std::int32_t cls_id() const;
  std::int32_t sep_id() const;
  std::int32_t unk_id() const;
  // Special tokens the post-processor adds to one sequence (2 for BERT) or a pair (3).
  std::size_t num_special_tokens(bool pair) const;
  // What tokenizer.json itself asks for ("truncation", "padding"); encode() never applies these
  // by itself.
  const EncodeOptions& file_options() const;
  // sha256 (hex) of the tokenizer file; for vocab.txt + tokenizer_config.json, of the two files'
  // hashes joined by '\n'.
  const std::string& sha256() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace hf::tokenizer
