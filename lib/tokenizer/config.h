// Everything a tokenizer file says (internal): read from tokenizer.json, or from vocab.txt plus an
// optional tokenizer_config.json, into one plain struct the encoder is built from. tokenizer.json
// is a pipeline (normalizer, pre_tokenizer, model, post_processor, added_tokens); each component
// is one of the small types below, chosen at load, and anything else is refused there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/precompiled.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unigram.h"
#include "tokenizer/wordpiece.h"

namespace hf::tokenizer {

struct NormalizerConfig {
  bool enabled = true;  // false: tokenizer.json has "normalizer": null
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool strip_accents = true;
  bool lowercase = true;
};

// One pre-tokenizer of tokenizer.json (a Sequence is a list of them).
struct PreTokenizerConfig {
  enum class Type {
    kBert, kByteLevel, kMetaspace, kWhitespace, kWhitespaceSplit, kPunctuation, kDigits, kSplit, kCharDelimiterSplit
  };
  enum class Prepend { kAlways, kFirst, kNever };
  // What becomes of the delimiters a split finds (HF SplitDelimiterBehavior).
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  Type type = Type::kBert;
  Behavior behavior = Behavior::kIsolated;  // kPunctuation, kSplit
  bool individual_digits = false;           // kDigits
  bool invert = false;                      // kSplit: the pattern matches the pieces, not the delimiters
  std::shared_ptr<const Regex> regex;       // kSplit (a String pattern escaped)
  char32_t delimiter = U' ';                // kCharDelimiterSplit
  bool add_prefix_space = true;  // ByteLevel
  bool use_regex = true;         // ByteLevel: split with GPT-2's regex
  std::string replacement;       // Metaspace: what spaces become (one character)
  Prepend prepend = Prepend::kAlways;
  bool split = true;             // Metaspace: a word starts at each replacement
};

// One normalizer of a list (tokenizer.json "normalizer" other than a lone BertNormalizer, or a
// Sequence): applied to the whole text, in order.
struct NormalizerStep {
  enum class Type {
    kBert, kNfc, kNfd, kNfkc, kNfkd, kLowercase, kStrip, kStripAccents, kReplace, kPrepend, kPrecompiled
  };
  Type type = Type::kBert;
  NormalizerConfig bert;              // kBert
  bool left = true, right = true;     // kStrip
  std::string pattern, content;       // kReplace (pattern: a literal string unless regex); kPrepend: content
  std::shared_ptr<const Regex> regex;              // kReplace with a {"Regex": ...} pattern
  std::shared_ptr<const Precompiled> precompiled;  // kPrecompiled
};

enum class ModelType { kWordPiece, kBpe, kUnigram };

// An entry of tokenizer.json "added_tokens". Tokens with normalized=false are matched on the raw
// text before normalization (HF's AddedVocabulary); normalized ones on the normalized text.
// single_word: only where no word character (Rust regex \w) touches it; lstrip / rstrip: the
// whitespace before / after it goes with it. (special only matters for decoding.)
struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool normalized = false;
  bool single_word = false, lstrip = false, rstrip = false;
};

// One element of a TemplateProcessing template: a special token or sequence A (0) / B (1).
struct TemplatePiece {
  bool is_sequence = false;
  int sequence = 0;
  std::int32_t type_id = 0;
  std::vector<std::int32_t> ids;  // special token ids
};

struct TokenizerConfig {
  ModelType model_type = ModelType::kWordPiece;
  WordPieceConfig model;  // model_type kWordPiece
  BpeConfig bpe;          // model_type kBpe
  UnigramConfig unigram;  // model_type kUnigram
  NormalizerConfig normalizer;  // a lone BertNormalizer (or none: enabled = false)
  std::vector<NormalizerStep> normalizers;  // any other normalizer; then normalizer.enabled = false
  std::vector<PreTokenizerConfig> pre_tokenizers;  // applied in order; empty: none
  std::vector<AddedToken> added_tokens;
  bool has_post_processor = false;
  std::vector<TemplatePiece> single, pair;
  EncodeOptions file_options;  // tokenizer.json "truncation" / "padding"
  std::string pad_token = "[PAD]", cls_token = "[CLS]", sep_token = "[SEP]";
  std::int32_t pad_id = -1;  // -1: the id of pad_token
  std::int32_t pad_type_id = 0;
  std::string sha256;
};

// Reads a tokenizer.json, a vocab.txt (+ tokenizer_config.json beside it) or a directory holding
// either (tokenizer.json preferred). Throws Error(kNoInput) when nothing is there, Error(kConfig)
// on malformed or unsupported files.
TokenizerConfig load_config(const std::string& path);

}  // namespace hf::tokenizer
