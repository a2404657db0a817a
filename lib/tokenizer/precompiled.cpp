// The Precompiled normalizer: the charsmap's double-array trie and HF's grapheme-by-grapheme walk.
// Format: sentencepiece normalizer.cc (the blob) and Darts-clone's DoubleArrayUnit (the units).
#include "tokenizer/precompiled.h"

#include <cstring>

#include "core/error.h"
#include "tokenizer/grapheme.h"
#include "tokenizer/unicode.h"

namespace hf::tokenizer {
namespace {

// A Darts-clone unit: bits 0-7 the label, bit 8 "a leaf hangs below", bit 9 the offset's scale,
// bits 10-31 the offset; a leaf unit's bits 0-30 are its value.
inline bool has_leaf(std::uint32_t u) { return (u >> 8) & 1; }
inline std::uint32_t value(std::uint32_t u) { return u & 0x7FFFFFFFu; }
inline std::uint32_t label(std::uint32_t u) { return u & 0x800000FFu; }
inline std::uint32_t offset(std::uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

inline std::size_t char_len(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

}  // namespace

std::shared_ptr<const Precompiled> Precompiled::parse(std::string_view blob, std::string& error) {
  if (blob.size() < 4) {
    error = "shorter than the 4 bytes of its trie size";
    return nullptr;
  }
  auto le32 = [&](std::size_t at) {
    const auto* b = reinterpret_cast<const unsigned char*>(blob.data() + at);
    return static_cast<std::uint32_t>(b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::uint32_t>(b[3]) << 24));
  };
  // As spm_precompiled reads it: size / 4 units; the strings start right after them.
  const std::size_t units = le32(0) / 4;
  if (units > (blob.size() - 4) / 4) {
    error = "its trie of " + std::to_string(le32(0)) + " bytes is longer than the " + std::to_string(blob.size() - 4) +
            " bytes that follow";
    return nullptr;
  }
  std::shared_ptr<Precompiled> p(new Precompiled());
  p->units_.resize(units);
  for (std::size_t k = 0; k < units; ++k) p->units_[k] = le32(4 + 4 * k);
  p->normalized_ = std::string(blob.substr(4 + 4 * units));
  try {
    for (std::size_t i = 0; i < p->normalized_.size();)
      if (static_cast<unsigned char>(p->normalized_[i]) < 0x80) {
        ++i;
      } else {
        unicode::decode_utf8(p->normalized_, i);
      }
  } catch (const Error&) {
    error = "its replacement strings are not valid UTF-8";
    return nullptr;
  }
  if (!p->check(error)) return nullptr;
  for (int b = 1; b < 128; ++b) {
    const char c = static_cast<char>(b);
    p->ascii_mapped_[b] = p->transform(std::string_view(&c, 1), p->ascii_replacement_[b]);
  }
  return p;
}

// Every node the walk can reach, with every byte: each index it reads is in the array, and each
// leaf points into the strings at a character boundary. (HF reads out of bounds on such a trie
// and panics mid-encoding; we refuse the file instead.)
bool Precompiled::check(std::string& error) const {
  const std::size_t n = units_.size();
  if (n == 0) {
    error = "its trie is empty";
    return false;
  }
  std::vector<bool> seen(n);
  std::vector<std::size_t> todo = {offset(units_[0])};
  while (!todo.empty()) {
    const std::size_t node = todo.back();
    todo.pop_back();
    if (node < n && seen[node]) continue;
    if (node < n) seen[node] = true;
    for (std::size_t c = 1; c < 256; ++c) {
      const std::size_t at = node ^ c;
      if (at >= n) {
        error = "its trie indexes unit " + std::to_string(at) + " of " + std::to_string(n);
        return false;
      }
      const std::uint32_t u = units_[at];
      if (label(u) != c) continue;
      const std::size_t child = at ^ offset(u);
      if (has_leaf(u)) {
        if (child >= n) {
          error = "its trie indexes unit " + std::to_string(child) + " of " + std::to_string(n);
          return false;
        }
        const std::size_t v = value(units_[child]);
        if (v > normalized_.size() ||
            (v < normalized_.size() && (static_cast<unsigned char>(normalized_[v]) & 0xC0) == 0x80)) {
          error = "a trie value (" + std::to_string(v) + ") is not the start of a replacement string";
          return false;
        }
      }
      todo.push_back(child);
    }
  }
  return true;
}

bool Precompiled::transform(std::string_view key, std::string_view& replacement) const {
  std::size_t node = offset(units_[0]);
  for (const char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) break;
    node ^= c;
    const std::uint32_t u = units_[node];
    if (label(u) != c) return false;
    node ^= offset(u);
    if (has_leaf(u)) {
      const std::size_t v = value(units_[node]);
      const std::size_t nul = normalized_.find('\0', v);
      replacement = std::string_view(normalized_).substr(v, (nul == std::string::npos ? normalized_.size() : nul) - v);
      return true;
    }
  }
  return false;
}

void Precompiled::normalize(std::string_view text, std::string& out) const {
  const std::uint8_t* props = grapheme::property_table();
  const std::size_t n = text.size();
  std::string_view r;
  for (std::size_t i = 0; i < n;) {
    const auto b = static_cast<unsigned char>(text[i]);
    // An ASCII character before another one (CR LF aside) is a cluster of its own.
    if (b < 0x80 && (i + 1 == n || (static_cast<unsigned char>(text[i + 1]) < 0x80 && !(b == '\r' && text[i + 1] == '\n')))) {
      if (ascii_mapped_[b]) {
        out.append(ascii_replacement_[b]);
      } else {
        out.push_back(static_cast<char>(b));
      }
      ++i;
      continue;
    }
    const std::size_t end = grapheme::cluster_end(props, text, i);
    if (end - i < 6 && transform(text.substr(i, end - i), r)) {
      out.append(r);
      i = end;
      continue;
    }
    while (i < end) {
      const std::size_t len = char_len(static_cast<unsigned char>(text[i]));
      const std::string_view c = text.substr(i, len);
      if (transform(c, r)) {
        out.append(r);
      } else {
        out.append(c);
      }
      i += len;
    }
  }
}

}  // namespace hf::tokenizer
