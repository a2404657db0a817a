// The Precompiled normalizer (internal): sentencepiece's precompiled_charsmap, the normalization
// rules (nmt_nfkc, nfkc_cf, or a user's TSV) compiled into one blob that XLM-R, DeBERTa-v3, T5 and
// ALBERT tokenizer.json files carry in base64.
//
// The blob: a little-endian u32 byte size of a Darts-clone double-array trie, the trie as u32
// units, then the replacement strings, each ending in NUL. A trie key is the UTF-8 of a source
// text; its leaf value is the offset of the replacement.
//
// HF (spm_precompiled + normalizers/precompiled.rs) walks the text by extended grapheme cluster:
// a cluster shorter than 6 bytes whose shortest key-prefix is in the trie becomes that key's
// replacement as a whole (the rest of the cluster is dropped: "ﬁ" + U+0301 gives "fi"); any other
// cluster goes character by character, each replaced when it is a key, else kept.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hf::tokenizer {

class Precompiled {
 public:
  // Reads the decoded blob. Returns nullptr and sets `error` when it is malformed (too short,
  // replacement strings not UTF-8, or a trie that would index out of its array).
  static std::shared_ptr<const Precompiled> parse(std::string_view blob, std::string& error);

  // Appends the normalized `text` (valid UTF-8) to `out`.
  void normalize(std::string_view text, std::string& out) const;

 private:
  Precompiled() = default;
  // The replacement of the shortest key that prefixes `key` (up to its first NUL); false when none.
  bool transform(std::string_view key, std::string_view& replacement) const;
  bool check(std::string& error) const;

  std::vector<std::uint32_t> units_;
  std::string normalized_;
  // What a lone ASCII character becomes (the common case), when it is a key.
  std::array<std::string_view, 128> ascii_replacement_{};
  std::array<bool, 128> ascii_mapped_{};
};

}  // namespace hf::tokenizer
