// BertNormalizer (internal), streaming: clean_text, handle_chinese_chars, strip_accents (NFD with
// canonical reordering, then drop Mn) and lowercase, in HF's order, one character at a time into a
// sink, so that normalization, pre-tokenization and WordPiece run in one pass without building the
// normalized string. ASCII takes a table lookup per byte.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/config.h"
#include "tokenizer/unicode.h"

namespace hf::tokenizer {

// Characters NFD must reorder wait here (combining class, char) until the next starter.
using CombiningRun = std::vector<std::pair<int, char32_t>>;

class Normalizer {
 public:
  explicit Normalizer(const NormalizerConfig& config);

  // Calls sink.put(char32_t) for every character of the normalized `text`. `run` is scratch space.
  // Throws Error(kDataErr) on invalid UTF-8.
  template <class Sink>
  void normalize(std::string_view text, Sink& sink, CombiningRun& run) const;

  // The normalized text as a string (for added-token patterns).
  std::string normalize(std::string_view text) const;

 private:
  template <class Sink>
  void emit(char32_t c, Sink& sink) const;  // the last steps: drop Mn, lowercase
  template <class Sink>
  void decomposed(char32_t c, Sink& sink, CombiningRun& run) const;
  template <class Sink>
  void flush(Sink& sink, CombiningRun& run) const;

  NormalizerConfig config_;
  const std::uint8_t* flags_;
  std::int16_t ascii_[128];  // normalized ASCII character, or -1 when clean_text drops it
};

template <class Sink>
void Normalizer::emit(char32_t c, Sink& sink) const {
  const std::uint8_t f = flags_[c];
  if (config_.strip_accents && (f & unicode::kMark)) return;
  if (config_.lowercase && (f & unicode::kLowercase)) {
    char32_t lower[3];
    int n = unicode::lowercase(c, lower);
    for (int k = 0; k < n; ++k) sink.put(lower[k]);
    return;
  }
  sink.put(c);
}

template <class Sink>
void Normalizer::flush(Sink& sink, CombiningRun& run) const {
  if (run.size() > 1)
    std::stable_sort(run.begin(), run.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [ccc, c] : run) emit(c, sink);
  run.clear();
}

// One fully decomposed character: starters flush the waiting combining run (canonical ordering).
template <class Sink>
void Normalizer::decomposed(char32_t c, Sink& sink, CombiningRun& run) const {
  if (flags_[c] & unicode::kCombining) {
    run.emplace_back(unicode::combining_class(c), c);
    return;
  }
  if (!run.empty()) flush(sink, run);
  emit(c, sink);
}

template <class Sink>
void Normalizer::normalize(std::string_view text, Sink& sink, CombiningRun& run) const {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  if (!config_.enabled) {
    for (std::size_t i = 0; i < n;) sink.put(p[i] < 0x80 ? p[i++] : unicode::decode_utf8(text, i));
    return;
  }
  std::size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      std::int16_t m = ascii_[p[i++]];
      if (m < 0) continue;
      if (!run.empty()) flush(sink, run);
      sink.put(static_cast<char32_t>(m));
      continue;
    }
    char32_t c = unicode::decode_utf8(text, i);
    std::uint8_t f = flags_[c];
    if (config_.clean_text) {
      if (f & unicode::kDrop) continue;
      if (f & unicode::kWhitespace) {
        c = U' ';
        f = flags_[c];
      }
    }
    const bool cjk = config_.handle_chinese_chars && (f & unicode::kCjk);
    if (!config_.strip_accents) {
      if (cjk) sink.put(U' ');
      emit(c, sink);
      if (cjk) sink.put(U' ');
      continue;
    }
    if (cjk) decomposed(U' ', sink, run);
    if (f & unicode::kDecomposes) {
      char32_t parts[unicode::kMaxDecomposition];
      int k = unicode::decompose(c, parts);
      for (int j = 0; j < k; ++j) decomposed(parts[j], sink, run);
    } else {
      decomposed(c, sink, run);
    }
    if (cjk) decomposed(U' ', sink, run);
  }
  if (!run.empty()) flush(sink, run);
}

}  // namespace hf::tokenizer

namespace hf::tokenizer {

// The other normalizers (NFC/NFD/NFKC/NFKD through utf8proc, Lowercase, Strip, StripAccents,
// Replace with a literal string or a regex, Prepend, Precompiled, and BertNormalizer inside a
// Sequence), applied one after the other to
// the whole text as HF's Sequence does.
class NormalizerChain {
 public:
  explicit NormalizerChain(const std::vector<NormalizerStep>& steps);
  bool empty() const { return steps_.empty(); }
  // Throws Error(kDataErr) on invalid UTF-8.
  std::string normalize(std::string_view text) const;

 private:
  std::vector<NormalizerStep> steps_;
  std::vector<Normalizer> bert_;  // one per kBert step, in order
};

}  // namespace hf::tokenizer
