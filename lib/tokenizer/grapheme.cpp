// Extended grapheme clusters: the UAX #29 rules GB3-GB13 over the generated property table.
#include "tokenizer/grapheme.h"

#include <memory>

#include "tokenizer/unicode.h"

namespace hf::tokenizer::grapheme {
namespace {

#include "tokenizer/grapheme_tables.inc"


}  // namespace

const std::uint8_t* property_table() {
  static const std::unique_ptr<std::uint8_t[]> table = [] {
    auto t = std::make_unique<std::uint8_t[]>(unicode::kMaxCodePoint + 1);
    for (const auto& r : kGraphemeProps)
      for (char32_t c = r.first; c <= r.last; ++c) t[c] = r.props;
    return t;
  }();
  return table.get();
}

std::size_t cluster_end(const std::uint8_t* props, std::string_view text, std::size_t begin) {
  std::size_t end = begin;
  std::uint8_t p = props[unicode::next_char(text, end)];
  auto prev = static_cast<Gcb>(p & 15);
  int emoji = (p & kExtPict) ? 1 : 0;        // GB11: 1 after ExtPict Extend*, 2 after its ZWJ
  int conjunct = (p & kInCbConsonant) ? 1 : 0;  // GB9c: 1 after a consonant, 2 once a linker followed
  int regional = prev == kRegional ? 1 : 0;  // GB12/13: regional indicators in a row
  while (end < text.size()) {
    std::size_t after = end;
    const std::uint8_t q = props[unicode::next_char(text, after)];
    const auto cur = static_cast<Gcb>(q & 15);
    bool join;
    if (prev == kCr && cur == kLf) {
      join = true;  // GB3
    } else if (prev == kControl || prev == kCr || prev == kLf || cur == kControl || cur == kCr || cur == kLf) {
      join = false;  // GB4, GB5
    } else if (prev == kL && (cur == kL || cur == kV || cur == kLv || cur == kLvt)) {
      join = true;  // GB6
    } else if ((prev == kLv || prev == kV) && (cur == kV || cur == kT)) {
      join = true;  // GB7
    } else if ((prev == kLvt || prev == kT) && cur == kT) {
      join = true;  // GB8
    } else if (cur == kExtend || cur == kZwj || cur == kSpacingMark || prev == kPrepend) {
      join = true;  // GB9, GB9a, GB9b
    } else if ((q & kInCbConsonant) && conjunct == 2) {
      join = true;  // GB9c
    } else if (prev == kZwj && emoji == 2 && (q & kExtPict)) {
      join = true;  // GB11
    } else {
      join = prev == kRegional && cur == kRegional && regional % 2 == 1;  // GB12, GB13
    }
    if (!join) break;
    if (q & kExtPict) {
      emoji = 1;
    } else if (emoji == 1 && cur == kZwj) {
      emoji = 2;
    } else if (!(emoji == 1 && cur == kExtend)) {
      emoji = 0;
    }
    if (q & kInCbConsonant) {
      conjunct = 1;
    } else if (conjunct > 0 && (q & kInCbLinker)) {
      conjunct = 2;
    } else if (!(conjunct > 0 && (q & kInCbExtend))) {
      conjunct = 0;
    }
    regional = cur == kRegional ? regional + 1 : 0;
    prev = cur;
    end = after;
  }
  return end;
}

}  // namespace hf::tokenizer::grapheme
