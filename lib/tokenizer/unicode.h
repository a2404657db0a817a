// Character classes as HF `tokenizers` sees them (internal): one flag byte per code point, built once
// from the measured sets in unicode_tables.inc, plus the mapping values (canonical decomposition,
// combining class, lowercase) from utf8proc. See gen_unicode_tables.py for why utf8proc alone
// is not enough.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hf::tokenizer::unicode {

inline constexpr char32_t kMaxCodePoint = 0x10FFFF;

enum Flag : std::uint8_t {
  kDrop = 1,          // clean_text removes it (NUL, U+FFFD, Cc/Cf/Co as HF knows them)
  kWhitespace = 2,    // Rust char::is_whitespace: clean_text maps it to ' ', the pre-tokenizer splits on it
  kPunct = 4,         // BertPreTokenizer isolates it
  kCjk = 8,           // handle_chinese_chars puts spaces around it
  kMark = 16,         // strip_accents drops it after NFD (Mn)
  kDecomposes = 32,   // NFD changes it
  kCombining = 64,    // canonical combining class != 0 (NFD reorders it)
  kLowercase = 128,   // to_lowercase changes it
};

// The flag table, indexed by code point (kMaxCodePoint + 1 entries; surrogates have no flags).
// Built on first call; thread-safe; lives for the program.
const std::uint8_t* flag_table();

inline constexpr int kMaxDecomposition = 8;
// Full canonical decomposition of a kDecomposes character; returns the number written to `out`.
int decompose(char32_t c, char32_t out[kMaxDecomposition]);
int combining_class(char32_t c);
// Rust char::to_lowercase of a kLowercase character (1 to 3 characters); returns the count.
int lowercase(char32_t c, char32_t out[3]);

// The classes HF's splitting pre-tokenizers and added-token options use (Rust's regex crate \w,
// Punctuation's punctuation, char::is_numeric), one byte per code point like flag_table().
enum SplitFlag : std::uint8_t { kWordChar = 1, kPunctuation = 2, kNumeric = 4 };
const std::uint8_t* split_table();

// What the StripAccents normalizer drops (combining marks as HF knows them).
bool is_combining_mark(char32_t c);

// Writes the UTF-8 encoding of `c` (1 to 4 bytes) to `out`; returns the number of bytes.
inline std::size_t encode_utf8(char32_t c, char* out) {
  if (c < 0x80) {
    out[0] = static_cast<char>(c);
    return 1;
  }
  if (c < 0x800) {
    out[0] = static_cast<char>(0xC0 | (c >> 6));
    out[1] = static_cast<char>(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (c >> 12));
    out[1] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (c >> 18));
  out[1] = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (c & 0x3F));
  return 4;
}

// Appends the UTF-8 encoding of `c`.
inline void append_utf8(std::string& s, char32_t c) {
  char buf[4];
  s.append(buf, encode_utf8(c, buf));
}

[[noreturn]] void throw_invalid_utf8(std::size_t offset);

// Decodes one multi-byte UTF-8 sequence starting at s[i] (s[i] >= 0x80) and advances i.
// Throws Error(kDataErr) on invalid UTF-8 (overlong forms, surrogates, truncation, > U+10FFFF).
inline char32_t decode_utf8(std::string_view s, std::size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  const unsigned b0 = p[i];
  auto cont = [&](std::size_t k) -> unsigned {
    if (i + k >= n || (p[i + k] & 0xC0) != 0x80) throw_invalid_utf8(i);
    return p[i + k] & 0x3F;
  };
  char32_t c;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    c = ((b0 & 0x1F) << 6) | cont(1);
    i += 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    c = ((b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) throw_invalid_utf8(i);
    i += 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    c = ((b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    if (c < 0x10000 || c > kMaxCodePoint) throw_invalid_utf8(i);
    i += 4;
  } else {
    throw_invalid_utf8(i);
  }
  return c;
}

// The character at s[i] (any byte), advancing i past it. Same errors as decode_utf8.
inline char32_t next_char(std::string_view s, std::size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  return decode_utf8(s, i);
}

}  // namespace hf::tokenizer::unicode
