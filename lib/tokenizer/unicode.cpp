// Builds the per-code-point flag table from the measured HF sets and answers mapping queries
// through utf8proc.
#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <iterator>
#include <memory>

#include "core/error.h"

namespace hf::tokenizer::unicode {
namespace {

struct CodeRange {
  char32_t lo, hi;
};
struct LowercaseOverride {
  char32_t c;
  int n;
  char32_t out[3];
};

#include "tokenizer/unicode_tables.inc"

// HF's is_chinese_char (normalizers/bert.rs): the CJK Unified Ideographs blocks it lists — note
// 0x2B920, not 0x2B820, as HF writes it.
constexpr CodeRange kCjkRanges[] = {{0x4E00, 0x9FFF},   {0x3400, 0x4DBF},   {0x20000, 0x2A6DF},
                              {0x2A700, 0x2B73F}, {0x2B740, 0x2B81F}, {0x2B920, 0x2CEAF},
                              {0xF900, 0xFAFF},   {0x2F800, 0x2FA1F}};
// Rust char::is_whitespace (the Unicode White_Space property).
constexpr CodeRange kWhitespaceRanges[] = {{0x09, 0x0D}, {0x20, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},
                                     {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
                                     {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};

template <std::size_t N>
void mark(std::uint8_t* table, const CodeRange (&ranges)[N], std::uint8_t flag) {
  for (const auto& r : ranges)
    for (char32_t c = r.lo; c <= r.hi; ++c) table[c] |= flag;
}

std::unique_ptr<std::uint8_t[]> build_table() {
  auto table = std::make_unique<std::uint8_t[]>(kMaxCodePoint + 1);
  std::fill_n(table.get(), kMaxCodePoint + 1, std::uint8_t{0});
  mark(table.get(), kHfDrop, kDrop);
  mark(table.get(), kWhitespaceRanges, kWhitespace);
  mark(table.get(), kHfPunct, kPunct);
  mark(table.get(), kCjkRanges, kCjk);
  mark(table.get(), kHfNonspacingMark, kMark);
  mark(table.get(), kHfDecomposes, kDecomposes);
  mark(table.get(), kHfCombining, kCombining);
  mark(table.get(), kHfLowercaseChanges, kLowercase);
  return table;
}

}  // namespace

const std::uint8_t* flag_table() {
  static const std::unique_ptr<std::uint8_t[]> table = build_table();
  return table.get();
}

int decompose(char32_t c, char32_t out[kMaxDecomposition]) {
  utf8proc_int32_t buf[kMaxDecomposition];
  int last_boundclass = 0;
  utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, kMaxDecomposition,
                                               UTF8PROC_DECOMPOSE, &last_boundclass);
  if (n <= 0 || n > kMaxDecomposition) {  // cannot happen for valid code points; keep the character
    out[0] = c;
    return 1;
  }
  for (utf8proc_ssize_t k = 0; k < n; ++k) out[k] = static_cast<char32_t>(buf[k]);
  return static_cast<int>(n);
}

int combining_class(char32_t c) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
}

int lowercase(char32_t c, char32_t out[3]) {
  const auto* end = std::end(kHfLowercaseOverrides);
  const auto* it = std::lower_bound(std::begin(kHfLowercaseOverrides), end, c,
                                    [](const LowercaseOverride& o, char32_t v) { return o.c < v; });
  if (it != end && it->c == c) {
    std::copy_n(it->out, it->n, out);
    return it->n;
  }
  out[0] = static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
  return 1;
}

namespace {

struct SplitRange {
  char32_t lo, hi;
};

#include "tokenizer/split_classes.inc"

}  // namespace

const std::uint8_t* split_table() {
  static const std::unique_ptr<std::uint8_t[]> table = [] {
    auto t = std::make_unique<std::uint8_t[]>(kMaxCodePoint + 1);
    auto set = [&](const auto& ranges, std::uint8_t flag) {
      for (const auto& r : ranges)
        for (char32_t c = r.lo; c <= r.hi; ++c) t[c] |= flag;
    };
    set(kHfWordChars, kWordChar);
    set(kHfPunctuation, kPunctuation);
    set(kHfNumeric, kNumeric);
    return t;
  }();
  return table.get();
}

bool is_combining_mark(char32_t c) {
  if (c < kHfCombiningMark[0].lo) return false;
  const auto* it = std::upper_bound(std::begin(kHfCombiningMark), std::end(kHfCombiningMark), c,
                                    [](char32_t v, const CodeRange& r) { return v < r.lo; });
  return it != std::begin(kHfCombiningMark) && c <= std::prev(it)->hi;
}

void throw_invalid_utf8(std::size_t offset) {
  throw Error(ErrorKind::kDataErr, "invalid UTF-8 at byte " + std::to_string(offset));
}

}  // namespace hf::tokenizer::unicode
