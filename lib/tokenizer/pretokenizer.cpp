// ByteLevel (GPT-2's split regex, as an exact scanner, then bytes mapped to printable characters),
// the BERT pre-tokenizer, Metaspace, and the splitting ones (Whitespace, WhitespaceSplit,
// Punctuation, Digits, Split, CharDelimiterSplit), for the general pipeline.
#include "tokenizer/pretokenizer.h"

#include <utf8proc.h>

#include <array>
#include <memory>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace hf::tokenizer {
namespace {

// GPT-2's regex (HF pre_tokenizers/byte_level.rs, run there by Oniguruma):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Its alternatives only look at four classes of characters, so a scanner over a class table
// finds the same matches. The classes must be Oniguruma's, whose Unicode is newer than Debian's
// PCRE2 (10.42, Unicode 14: it split U+31350 off a word) and than utf8proc's (Unicode 15: it
// missed the Unicode 16 letters at U+13460): utf8proc's categories, corrected by the overrides
// measured from tokenizers (gen_gpt2_classes.py). \s is Unicode White_Space there.
enum CharClass : std::uint8_t { kLetter, kNumber, kSpace, kOther };

#include "tokenizer/gpt2_classes.inc"

const std::uint8_t* class_table() {
  static const std::unique_ptr<std::uint8_t[]> table = [] {
    auto t = std::make_unique<std::uint8_t[]>(unicode::kMaxCodePoint + 1);
    for (char32_t c = 0; c <= unicode::kMaxCodePoint; ++c) {
      switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
          t[c] = kLetter;
          break;
        case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
          t[c] = kNumber;
          break;
        default:
          t[c] = kOther;
      }
    }
    for (char32_t c : {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000})
      t[c] = kSpace;
    for (char32_t c = 0x2000; c <= 0x200A; ++c) t[c] = kSpace;
    for (const auto& o : kGpt2Overrides)
      for (char32_t c = o.first; c <= o.last; ++c) t[c] = o.cls;
    return t;
  }();
  return table.get();
}

// The class of the character at text[i]; sets `end` past it. `text` is valid UTF-8.
inline CharClass class_at(const std::uint8_t* table, std::string_view text, std::size_t i, std::size_t& end) {
  const auto b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) {
    end = i + 1;
    return static_cast<CharClass>(table[b]);
  }
  end = i;
  return static_cast<CharClass>(table[unicode::decode_utf8(text, end)]);
}

// The end of the first match at `i` (< text.size()).
std::size_t gpt2_match(const std::uint8_t* table, std::string_view text, std::size_t i) {
  const std::size_t n = text.size();
  if (text[i] == '\'' && i + 1 < n) {
    const char x = text[i + 1];
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return i + 2;
    if (i + 2 < n) {
      const char y = text[i + 2];
      if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l')) return i + 3;
    }
  }
  std::size_t end = 0;
  CharClass c = class_at(table, text, i, end);
  // " ?X+" for X letter, number or other: the optional space is taken when X follows it.
  if (text[i] == ' ' && end < n) {
    std::size_t end2 = 0;
    const CharClass next = class_at(table, text, end, end2);
    if (next != kSpace) {
      c = next;
      end = end2;
    }
  }
  if (c != kSpace) {
    while (end < n) {
      std::size_t after = 0;
      if (class_at(table, text, end, after) != c) break;
      end = after;
    }
    return end;
  }
  // "\s+(?!\S)|\s+": a run of whitespace, less its last character when something else follows
  // and the run is longer than one character.
  std::size_t last = i;
  while (end < n) {
    std::size_t after = 0;
    if (class_at(table, text, end, after) != kSpace) return last > i ? last : end;
    last = end;
    end = after;
  }
  return end;
}

// GPT-2's byte -> character table: printable Latin-1 bytes stand for themselves, the other 68
// take U+0100 onwards in byte order. Each as UTF-8 (1 or 2 bytes).
struct ByteMap {
  std::array<std::array<char, 2>, 256> utf8{};
  std::array<std::uint8_t, 256> size{};
  ByteMap() {
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char buf[4] = {};
      size[b] = static_cast<std::uint8_t>(unicode::encode_utf8(printable ? static_cast<char32_t>(b) : next++, buf));
      utf8[b] = {buf[0], buf[1]};
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}


// One character as its own match, runs of others as non-matches (HF's find_matches for a char
// predicate).
template <class Pred>
void char_segments(std::string_view text, Pred&& is_match, std::vector<Segment>& out) {
  std::size_t run = 0;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t at = i;
    if (!is_match(unicode::next_char(text, i))) continue;
    if (run < at) out.push_back({run, at, false});
    out.push_back({at, i, true});
    run = i;
  }
  if (run < text.size()) out.push_back({run, text.size(), false});
}

// HF NormalizedString::split: what becomes of matches and non-matches under `behavior`; the
// pieces go to `next` in order (empty ones are dropped there).
template <class Next>
void split_by(std::string_view text, std::vector<Segment>& segs, PreTokenizerConfig::Behavior behavior, Next&& next) {
  using B = PreTokenizerConfig::Behavior;
  std::size_t kept = 0;  // segs[0, kept) are the pieces
  bool previous = false;
  switch (behavior) {
    case B::kRemoved:
      for (const Segment& s : segs)
        if (!s.match) segs[kept++] = s;
      break;
    case B::kIsolated:
      kept = segs.size();
      break;
    case B::kContiguous:
      for (const Segment& s : segs) {
        if (s.match == previous && kept > 0) {
          segs[kept - 1].end = s.end;
        } else {
          segs[kept++] = s;
        }
        previous = s.match;
      }
      break;
    case B::kMergedWithPrevious:
      for (const Segment& s : segs) {
        if (s.match && !previous && kept > 0) {
          segs[kept - 1].end = s.end;
        } else {
          segs[kept++] = s;
        }
        previous = s.match;
      }
      break;
    case B::kMergedWithNext: {
      // From the back: a match joins the piece after it.
      std::size_t first = segs.size();  // segs[first, size) are the pieces
      for (std::size_t k = segs.size(); k-- > 0;) {
        const Segment s = segs[k];
        if (s.match && !previous && first < segs.size()) {
          segs[first].start = s.start;
        } else {
          segs[--first] = s;
        }
        previous = s.match;
      }
      for (std::size_t k = first; k < segs.size(); ++k) next(text.substr(segs[k].start, segs[k].end - segs[k].start));
      return;
    }
  }
  for (std::size_t k = 0; k < kept; ++k) next(text.substr(segs[k].start, segs[k].end - segs[k].start));
}

}  // namespace

PreTokenizer::PreTokenizer(std::vector<PreTokenizerConfig> steps) : steps_(std::move(steps)) {
  for (const auto& st : steps_) {
    if (st.type == PreTokenizerConfig::Type::kByteLevel) classes_ = class_table();
    if (st.type == PreTokenizerConfig::Type::kWhitespace || st.type == PreTokenizerConfig::Type::kPunctuation ||
        st.type == PreTokenizerConfig::Type::kDigits)
      split_classes_ = unicode::split_table();
  }
}

std::vector<Segment>& PreTokenizer::segments(std::size_t step) const {
  thread_local std::vector<std::vector<Segment>> segments;
  if (segments.size() < steps_.size()) segments.resize(steps_.size());
  std::vector<Segment>& s = segments[step];
  s.clear();
  return s;
}

void PreTokenizer::split(std::string_view text, bool at_start, const WordFn& word) const {
  run(0, text, at_start, word);
}

std::string& PreTokenizer::buffer(std::size_t step, int k) const {
  // Buffers per step, since a later step of a Sequence may be of the same type.
  thread_local std::vector<std::string> buffers;
  if (buffers.size() < 2 * steps_.size()) buffers.resize(2 * steps_.size());
  return buffers[2 * step + static_cast<std::size_t>(k)];
}

void PreTokenizer::run(std::size_t step, std::string_view text, bool at_start, const WordFn& word) const {
  if (text.empty()) return;
  if (step == steps_.size()) {
    word(text);
    return;
  }
  const PreTokenizerConfig& c = steps_[step];
  // Only the first part of a piece that starts the sequence starts it too.
  bool first = at_start;
  auto next = [&](std::string_view part) {
    run(step + 1, part, first, word);
    first = false;
  };
  switch (c.type) {
    case PreTokenizerConfig::Type::kByteLevel:
      byte_level(step, c, text, next);
      return;
    case PreTokenizerConfig::Type::kMetaspace: {
      // Spaces become the replacement, which goes in front (always, or for the sequence's first
      // piece only) unless already there; with split, every replacement starts a word.
      std::string& buf = buffer(step, 0);
      buf.clear();
      const std::string& rep = c.replacement;
      for (char ch : text) {
        if (ch == ' ') {
          buf += rep;
        } else {
          buf += ch;
        }
      }
      const bool prepend = c.prepend == PreTokenizerConfig::Prepend::kAlways ||
                           (c.prepend == PreTokenizerConfig::Prepend::kFirst && at_start);
      if (prepend && buf.compare(0, rep.size(), rep) != 0) buf.insert(0, rep);
      const std::string_view all = buf;
      if (!c.split) {
        next(all);
        return;
      }
      std::size_t start = 0;
      for (std::size_t at = all.find(rep, 1); at != std::string_view::npos; at = all.find(rep, at + rep.size())) {
        next(all.substr(start, at - start));
        start = at;
      }
      next(all.substr(start));
      return;
    }
    case PreTokenizerConfig::Type::kWhitespaceSplit: {
      const std::uint8_t* flags = unicode::flag_table();
      std::size_t start = 0;
      for (std::size_t i = 0; i < text.size();) {
        const std::size_t at = i;
        if (!(flags[unicode::next_char(text, i)] & unicode::kWhitespace)) continue;
        next(text.substr(start, at - start));
        start = i;
      }
      next(text.substr(start));
      return;
    }
    case PreTokenizerConfig::Type::kWhitespace: {
      // \w+|[^\w\s]+, whitespace dropped: runs of word characters and runs of the rest.
      const std::uint8_t* flags = unicode::flag_table();
      enum { kSpace, kWord, kOther } run = kSpace;
      std::size_t start = 0;
      for (std::size_t i = 0; i < text.size();) {
        const std::size_t at = i;
        const char32_t ch = unicode::next_char(text, i);
        const auto kind = (split_classes_[ch] & unicode::kWordChar)            ? kWord
                          : (flags[ch] & unicode::kWhitespace) ? kSpace
                                                               : kOther;
        if (kind == run) continue;
        if (run != kSpace) next(text.substr(start, at - start));
        run = kind;
        start = at;
      }
      if (run != kSpace) next(text.substr(start));
      return;
    }
    case PreTokenizerConfig::Type::kPunctuation:
    case PreTokenizerConfig::Type::kDigits: {
      const std::uint8_t flag = c.type == PreTokenizerConfig::Type::kDigits ? unicode::kNumeric : unicode::kPunctuation;
      std::vector<Segment>& segs = segments(step);
      char_segments(text, [&](char32_t ch) { return (split_classes_[ch] & flag) != 0; }, segs);
      const auto behavior = c.type == PreTokenizerConfig::Type::kPunctuation ? c.behavior
                            : c.individual_digits ? PreTokenizerConfig::Behavior::kIsolated
                                                  : PreTokenizerConfig::Behavior::kContiguous;
      split_by(text, segs, behavior, next);
      return;
    }
    case PreTokenizerConfig::Type::kCharDelimiterSplit: {
      std::vector<Segment>& segs = segments(step);
      char_segments(text, [&](char32_t ch) { return ch == c.delimiter; }, segs);
      split_by(text, segs, PreTokenizerConfig::Behavior::kRemoved, next);
      return;
    }
    case PreTokenizerConfig::Type::kSplit: {
      // The regex's matches and the text between them (HF's find_matches: an empty match is a
      // match too), flipped under invert.
      std::vector<Segment>& segs = segments(step);
      std::size_t prev = 0;
      c.regex->for_each_match(text, [&](std::size_t start, std::size_t end) {
        if (prev != start) segs.push_back({prev, start, c.invert});
        segs.push_back({start, end, !c.invert});
        prev = end;
      });
      if (prev != text.size()) segs.push_back({prev, text.size(), c.invert});
      split_by(text, segs, c.behavior, next);
      return;
    }
    case PreTokenizerConfig::Type::kBert: {
      // Whitespace separates and is dropped; punctuation is a word of its own.
      const std::uint8_t* flags = unicode::flag_table();
      std::size_t start = 0;
      for (std::size_t i = 0; i < text.size();) {
        const std::size_t at = i;
        const auto b = static_cast<unsigned char>(text[i]);
        const char32_t ch = b < 0x80 ? (++i, static_cast<char32_t>(b)) : unicode::decode_utf8(text, i);
        const std::uint8_t f = flags[ch];
        if (!(f & (unicode::kWhitespace | unicode::kPunct))) continue;
        next(text.substr(start, at - start));
        if (f & unicode::kPunct) next(text.substr(at, i - at));
        start = i;
      }
      next(text.substr(start));
      return;
    }
  }
}

void PreTokenizer::byte_level(std::size_t step, const PreTokenizerConfig& c, std::string_view text,
                              const WordFn& word) const {
  std::string& prefixed = buffer(step, 0);
  std::string& mapped = buffer(step, 1);
  if (c.add_prefix_space && text.front() != ' ') {
    prefixed.assign(1, ' ');
    prefixed.append(text);
    text = prefixed;
  }
  const ByteMap& m = byte_map();
  auto emit = [&](std::string_view part) {
    mapped.clear();
    for (char ch : part) {
      const auto b = static_cast<unsigned char>(ch);
      mapped.append(m.utf8[b].data(), m.size[b]);
    }
    word(mapped);
  };
  if (!c.use_regex) {
    emit(text);
    return;
  }
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = gpt2_match(classes_, text, at);
    emit(text.substr(at, end - at));
    at = end;
  }
}

}  // namespace hf::tokenizer
