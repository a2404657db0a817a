// WordPiece: vocabulary hash map and the greedy longest-match-first split.
#include "tokenizer/wordpiece.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.h"

namespace hf::tokenizer {
namespace {

// Up to 8 bytes, zero-extended, with fixed-size loads (overlapping ones for 4..7 bytes) so that
// no memcpy call is made.
inline std::uint64_t load_upto8(const char* p, std::size_t n) {
  if (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  if (n >= 4) {
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return a | (static_cast<std::uint64_t>(b) << (8 * (n - 4)));
  }
  if (n == 0) return 0;
  auto byte = [&](std::size_t i) { return static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i); };
  return byte(0) | byte(n / 2) | byte(n - 1);
}

// The slot head of a key: its first 7 bytes and its size (capped at 255) in the top byte.
inline std::uint64_t key_head(const char* p, std::size_t n) {
  return load_upto8(p, std::min<std::size_t>(n, 7)) | (static_cast<std::uint64_t>(std::min<std::size_t>(n, 255)) << 56);
}

// Multiply-xorshift over the head and the bytes after it; vocabulary keys are short, so speed
// matters more than quality.
inline std::uint64_t key_hash(std::uint64_t head, const char* p, std::size_t n) {
  constexpr std::uint64_t kMul = 0x9FB21C651E98DF25ull;
  std::uint64_t h = head * kMul;
  h ^= h >> 29;
  for (std::size_t i = 7; i < n; i += 8) {
    h = (h ^ load_upto8(p + i, n - i)) * kMul;
    h ^= h >> 29;
  }
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 32);
}

constexpr std::size_t kFilterBits = std::size_t{1} << 19;

inline std::size_t filter_bit(std::uint64_t hash) { return (hash >> 40) & (kFilterBits - 1); }

inline bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

void VocabMap::insert(std::string_view key, std::int32_t id) { entries_.emplace_back(std::string(key), id); }

bool VocabMap::same_key(const Slot& s, std::string_view key) const {
  if (key.size() <= 7) return true;  // the head held all of it
  std::uint32_t size;
  std::memcpy(&size, arena_.data() + s.offset, 4);
  return size == key.size() && std::memcmp(arena_.data() + s.offset + 4 + 7, key.data() + 7, key.size() - 7) == 0;
}

void VocabMap::finish() {
  std::size_t total = 0;
  for (const auto& e : entries_) total += e.first.size() + 4;
  if (total > UINT32_MAX) throw Error(ErrorKind::kConfig, "vocabulary: too large");
  std::size_t cap = std::bit_ceil(std::max<std::size_t>(16, entries_.size() * 2));
  slots_.assign(cap, Slot{});
  filter_.assign(kFilterBits / 64, 0);
  mask_ = cap - 1;
  size_ = 0;
  for (const auto& [key, id] : entries_) {
    const std::uint64_t head = key_head(key.data(), key.size());
    const std::uint64_t h = key_hash(head, key.data(), key.size());
    filter_[filter_bit(h) / 64] |= std::uint64_t{1} << (filter_bit(h) % 64);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s.head = head;
        s.id = id;
        if (key.size() > 7) {
          s.offset = static_cast<std::uint32_t>(arena_.size());
          auto size = static_cast<std::uint32_t>(key.size());
          arena_.append(reinterpret_cast<const char*>(&size), 4);
          arena_ += key;
        }
        ++size_;
        break;
      }
      if (s.head == head && same_key(s, key)) {
        s.id = id;
        break;
      }
    }
    max_key_size_ = std::max(max_key_size_, key.size());
  }
  entries_.clear();
  entries_.shrink_to_fit();
}

std::int32_t VocabMap::find(std::string_view key) const {
  const std::uint64_t head = key_head(key.data(), key.size());
  const std::uint64_t h = key_hash(head, key.data(), key.size());
  if (!((filter_[filter_bit(h) / 64] >> (filter_bit(h) % 64)) & 1)) return -1;
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.head == head && same_key(s, key)) return s.id;
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
