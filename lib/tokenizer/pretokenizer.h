// Pre-tokenizers of the general pipeline (internal): each splits one normalized piece of text into
// the words the model sees, as HF's pre_tokenizers do. (BERT's pre-tokenizer in front of WordPiece
// also has a fused streaming form in tokenizer.cpp; this one serves any other combination.)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/config.h"

namespace hf::tokenizer {

// Words are handed to the callback one by one; the view is valid only during the call.
using WordFn = std::function<void(std::string_view)>;

// A piece of text a split step found: [start, end), and whether its pattern matched it.
struct Segment {
  std::size_t start, end;
  bool match;
};

class PreTokenizer {
 public:
  explicit PreTokenizer(std::vector<PreTokenizerConfig> steps);

  // `text`: non-empty, valid UTF-8; `at_start`: it begins the sequence (Metaspace's "first").
  // Empty words are never passed on.
  void split(std::string_view text, bool at_start, const WordFn& word) const;

 private:
  void run(std::size_t step, std::string_view text, bool at_start, const WordFn& word) const;
  std::string& buffer(std::size_t step, int k) const;
  std::vector<Segment>& segments(std::size_t step) const;  // emptied
  void byte_level(std::size_t step, const PreTokenizerConfig& c, std::string_view text, const WordFn& word) const;

  std::vector<PreTokenizerConfig> steps_;
  const std::uint8_t* classes_ = nullptr;  // GPT-2 regex character classes, when ByteLevel is used
  const std::uint8_t* split_classes_ = nullptr;  // Whitespace / Punctuation / Digits classes, when used
};

}  // namespace hf::tokenizer
