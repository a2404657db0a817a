// WordPiece: vocabulary hash map and the greedy longest-match-first split.
#include "tokenizer/wordpiece.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.h"

namespace hf::tokenizer {
namespace {

// A small multiply-xorshift hash; vocabulary keys are short, so speed matters more than quality.
inline std::uint64_t hash_bytes(const char* p, std::size_t n) {
  constexpr std::uint64_t kMul = 0x9FB21C651E98DF25ull;
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t w = 0;
    if (n >= 4) {
      std::uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      w = a | (static_cast<std::uint64_t>(b) << 32);
    } else {
      w = static_cast<unsigned char>(p[0]) | (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n / 2])) << 8) |
          (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n - 1])) << 16);
    }
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

inline bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

void VocabMap::insert(std::string_view key, std::int32_t id) { entries_.emplace_back(std::string(key), id); }

void VocabMap::finish() {
  std::size_t cap = std::bit_ceil(std::max<std::size_t>(16, entries_.size() * 2));
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  std::size_t total = 0;
  for (const auto& e : entries_) total += e.first.size();
  arena_.reserve(total);
  std::size_t count = 0;
  for (const auto& [key, id] : entries_) {
    std::uint64_t h = hash_bytes(key.data(), key.size());
    auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = Slot{tag, static_cast<std::uint32_t>(key.size()), static_cast<std::uint32_t>(arena_.size()), id};
        arena_ += key;
        ++count;
        break;
      }
      if (s.tag == tag && s.size == key.size() && arena_.compare(s.offset, s.size, key) == 0) {
        s.id = id;
        break;
      }
    }
    max_key_size_ = std::max(max_key_size_, key.size());
  }
  size_ = count;
  entries_.clear();
  entries_.shrink_to_fit();
}

std::int32_t VocabMap::find(std::string_view key) const {
  std::uint64_t h = hash_bytes(key.data(), key.size());
  auto tag = static_cast<std::uint32_t>(h >> 32);
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.tag == tag && s.size == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
      return s.id;
  }
}

WordPiece::WordPiece(const WordPieceConfig& config) : max_chars_(config.max_input_chars_per_word) {
  const std::string& prefix = config.continuing_subword_prefix;
  std::int32_t max_id = -1;
  for (const auto& [token, id] : config.vocab) {
    if (id < 0) throw Error(ErrorKind::kConfig, "vocabulary: negative id for token '" + token + "'");
    vocab_.insert(token, id);
    if (token.compare(0, prefix.size(), prefix) == 0) continuation_.insert(std::string_view(token).substr(prefix.size()), id);
    max_id = std::max(max_id, id);
  }
  vocab_.finish();
  continuation_.finish();
  id_to_token_.resize(static_cast<std::size_t>(max_id + 1));
  for (const auto& [token, id] : config.vocab) id_to_token_[static_cast<std::size_t>(id)] = token;
  unk_id_ = vocab_.find(config.unk_token);
  if (unk_id_ < 0) throw Error(ErrorKind::kConfig, "vocabulary: unk token '" + config.unk_token + "' is missing");
}

std::string_view WordPiece::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size()) return {};
  return id_to_token_[static_cast<std::size_t>(id)];
}

void WordPiece::tokenize(std::string_view word, std::size_t n_chars, std::vector<std::int32_t>& out) const {
  if (n_chars > max_chars_) {
    out.push_back(unk_id_);
    return;
  }
  const std::size_t n = word.size();
  const std::size_t mark = out.size();
  std::size_t start = 0;
  while (start < n) {
    const VocabMap& map = start == 0 ? vocab_ : continuation_;
    // No key is longer than max_key_size(), so longer candidates are skipped without changing the
    // result; candidates always end on a character boundary, as HF's do.
    std::size_t end = std::min(n, start + map.max_key_size());
    while (end > start && end < n && is_continuation_byte(word[end])) --end;
    std::int32_t id = -1;
    while (end > start) {
      id = map.find(word.substr(start, end - start));
      if (id >= 0) break;
      do --end;
      while (end > start && is_continuation_byte(word[end]));
    }
    if (id < 0) {
      out.resize(mark);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

}  // namespace hf::tokenizer
