// BertNormalizer: the ASCII table and the to-string form (the streaming part is in normalizer.h).
#include "tokenizer/normalizer.h"

namespace hf::tokenizer {
namespace {

struct StringSink {
  std::string& out;
  void put(char32_t c) { unicode::append_utf8(out, c); }
};

}  // namespace

Normalizer::Normalizer(const NormalizerConfig& config) : config_(config), flags_(unicode::flag_table()) {
  for (char32_t b = 0; b < 128; ++b) {
    const std::uint8_t f = flags_[b];
    char32_t c = b;
    if (config_.clean_text && (f & unicode::kDrop)) {
      ascii_[b] = -1;
      continue;
    }
    if (config_.clean_text && (f & unicode::kWhitespace)) c = U' ';
    if (config_.lowercase && (flags_[c] & unicode::kLowercase)) {
      char32_t lower[3];
      unicode::lowercase(c, lower);  // one ASCII letter for ASCII input
      c = lower[0];
    }
    ascii_[b] = static_cast<std::int16_t>(c);
  }
}

std::string Normalizer::normalize(std::string_view text) const {
  std::string out;
  StringSink sink{out};
  CombiningRun run;
  normalize(text, sink, run);
  return out;
}

}  // namespace hf::tokenizer
