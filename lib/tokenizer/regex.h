// A tokenizer.json {"Regex": ...} pattern (internal), run by PCRE2 (UTF, UCP) the way HF runs it
// with Oniguruma (Ruby syntax, through the onig crate's find_iter).
//
// Where the two engines read a pattern differently, the pattern is refused rather than matched
// differently: \h \H (Oniguruma: hex digit; PCRE2: horizontal space), \w \W \b \B (Oniguruma's
// word characters include marks and No digits like "²", PCRE2 10.42's do not), POSIX brackets
// [[:alpha:]], (?i) (Oniguruma folds "ß" to "ss", PCRE2 folds one character at a time), (?m)
// (Oniguruma: dot matches newline; PCRE2: multiline anchors), \Q...\E (a literal only in PCRE2),
// \uHHHH (Oniguruma only), and Unicode properties \p \P \d \D \X (PCRE2 10.42 knows Unicode 14,
// Oniguruma a newer one: \p{P} misses U+11F43 in PCRE2). \s is spelled out as Oniguruma's (Unicode White_Space; PCRE2's adds
// U+180E). ^ and $ are line anchors in Ruby syntax: PCRE2_MULTILINE. Character
// properties follow each engine's Unicode version (PCRE2 10.42: Unicode 14), so characters
// assigned since can class differently.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace hf::tokenizer {

class Regex {
 public:
  // nullptr and `error` set when the pattern does not compile or is refused (see above).
  static std::shared_ptr<const Regex> compile(std::string_view pattern, std::string& error);
  // A pattern matching `text` literally (HF escapes a String pattern into a regex).
  static std::shared_ptr<const Regex> literal(std::string_view text);
  ~Regex();
  bool can_match_empty() const;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls fn(start, end) for each match in `text` (valid UTF-8), in order, as onig's find_iter
  // yields them: an empty match right where the previous match ended is skipped (the search moves
  // on by one character). Throws Error(kDataErr) when PCRE2 gives up (match or depth limit).
  template <class Fn>
  void for_each_match(std::string_view text, Fn&& fn) const {
    std::size_t from = 0, start = 0, end = 0;
    bool have_last = false;
    std::size_t last_end = 0;
    while (from <= text.size() && find(text, from, start, end)) {
      if (start == end && have_last && last_end == end) {
        from += from < text.size() ? char_len(static_cast<unsigned char>(text[from])) : 1;
        continue;
      }
      have_last = true;
      from = last_end = end;
      fn(start, end);
    }
  }

 private:
  Regex() = default;
  bool find(std::string_view text, std::size_t from, std::size_t& start, std::size_t& end) const;
  static std::size_t char_len(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

  void* code_ = nullptr;  // pcre2_code_8
};

}  // namespace hf::tokenizer
