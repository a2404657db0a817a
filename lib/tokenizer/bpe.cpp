// BPE: merge table, the per-character start of a word and HF's merge loop, behind the word cache.
#include "tokenizer/bpe.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/word_cache.h"

namespace hf::tokenizer {
namespace {

constexpr std::uint64_t kEmpty = ~std::uint64_t{0};

inline std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

inline std::size_t pair_hash(std::uint64_t k) {
  k *= 0x9E3779B97F4A7C15ull;
  return static_cast<std::size_t>(k ^ (k >> 29));
}

struct Symbol {
  std::int32_t c;
  std::int32_t prev, next;
  std::size_t len;  // bytes; 0 once merged into its left neighbour
};

struct QueuedMerge {
  std::size_t pos;
  std::uint32_t rank;
  std::int32_t new_id;
};

// HF's Merge ordering: the lowest rank first, then the leftmost position.
struct Later {
  bool operator()(const QueuedMerge& x, const QueuedMerge& y) const {
    if (x.rank != y.rank) return x.rank > y.rank;
    return x.pos > y.pos;
  }
};

struct MergeScratch {
  std::vector<Symbol> symbols;
  std::vector<QueuedMerge> heap;
  std::string piece;
};

}  // namespace

Bpe::Bpe(const BpeConfig& config)
    : unk_token_(config.unk_token),
      prefix_(config.continuing_subword_prefix),
      suffix_(config.end_of_word_suffix),
      fuse_unk_(config.fuse_unk),
      byte_fallback_(config.byte_fallback),
      ignore_merges_(config.ignore_merges),
      cache_key_(WordCache::new_owner()) {
  std::int32_t max_id = -1;
  for (const auto& [token, id] : config.vocab) {
    vocab_.insert(token, id);
    max_id = std::max(max_id, id);
  }
  vocab_.finish();
  id_to_token_.resize(static_cast<std::size_t>(max_id + 1));
  for (const auto& [token, id] : config.vocab) id_to_token_[static_cast<std::size_t>(id)] = token;
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char code[] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
    byte_ids_[b] = vocab_.find(std::string_view(code, sizeof code));
  }

  std::size_t cap = 16;
  while (cap < config.merges.size() * 2) cap *= 2;
  merges_.assign(cap, {kEmpty, Merge{0, 0}});
  merge_mask_ = cap - 1;
  auto fail = [&](std::size_t rank, const std::string& msg) {
    throw Error(ErrorKind::kConfig, Where{config.path, 0, "model.merges"}, "merge " + std::to_string(rank) + ": " + msg);
  };
  std::string joined;
  for (std::size_t rank = 0; rank < config.merges.size(); ++rank) {
    const auto& [a, b] = config.merges[rank];
    const std::int32_t a_id = vocab_.find(a), b_id = vocab_.find(b);
    if (a_id < 0) fail(rank, "token '" + a + "' is not in the vocabulary");
    if (b_id < 0) fail(rank, "token '" + b + "' is not in the vocabulary");
    // The merged token drops the right part's continuing_subword_prefix (HF assumes it is there).
    if (b.size() < prefix_.size()) fail(rank, "token '" + b + "' is shorter than continuing_subword_prefix");
    joined.assign(a).append(b, prefix_.size());
    const std::int32_t new_id = vocab_.find(joined);
    if (new_id < 0) fail(rank, "merged token '" + joined + "' is not in the vocabulary");
    const std::uint64_t key = pair_key(a_id, b_id);
    std::size_t i = pair_hash(key) & merge_mask_;
    while (merges_[i].first != kEmpty && merges_[i].first != key) i = (i + 1) & merge_mask_;
    merges_[i] = {key, Merge{static_cast<std::uint32_t>(rank), new_id}};  // a later duplicate wins
  }
}

const Bpe::Merge* Bpe::find_merge(std::int32_t a, std::int32_t b) const {
  const std::uint64_t key = pair_key(a, b);
  for (std::size_t i = pair_hash(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
    if (merges_[i].first == key) return &merges_[i].second;
    if (merges_[i].first == kEmpty) return nullptr;
  }
}

std::string_view Bpe::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size()) return {};
  return id_to_token_[static_cast<std::size_t>(id)];
}

std::int32_t Bpe::unk_id() const { return unk_token_ ? vocab_.find(*unk_token_) : -1; }

void Bpe::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (std::int32_t id = vocab_.find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  WordCache::lookup(cache_key_, word, out, [this](std::string_view w, std::vector<std::int32_t>& o) { merge_word(w, o); });
}

void Bpe::merge_word(std::string_view w, std::vector<std::int32_t>& out) const {
  thread_local MergeScratch s;
  std::vector<Symbol>& symbols = s.symbols;
  symbols.clear();
  auto add = [&](std::int32_t id, std::size_t len) {
    const auto n = static_cast<std::int32_t>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, n + 1, len});  // `next` of the last one is fixed below
  };
  std::int32_t unk_id = -1;
  std::size_t unk_len = 0;
  auto unk_vocab_id = [&] {
    const std::int32_t id = vocab_.find(*unk_token_);
    if (id < 0) throw Error(ErrorKind::kDataErr, "BPE: unk token '" + *unk_token_ + "' is not in the vocabulary");
    return id;
  };
  for (std::size_t i = 0; i < w.size();) {
    std::size_t end = i + 1;
    while (end < w.size() && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80) ++end;
    const bool first = i == 0, last = end == w.size();
    std::string_view piece = w.substr(i, end - i);
    const std::size_t byte_len = piece.size();
    if ((!first && !prefix_.empty()) || (last && !suffix_.empty())) {
      s.piece.clear();
      if (!first) s.piece += prefix_;
      s.piece += piece;
      if (last) s.piece += suffix_;
      piece = s.piece;
    }
    i = end;
    if (const std::int32_t id = vocab_.find(piece); id >= 0) {
      if (unk_id >= 0) {
        add(unk_id, unk_len);
        unk_id = -1;
      }
      add(id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : piece) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {  // a waiting unk stays waiting, as in HF
        for (char c : piece) add(byte_ids_[static_cast<unsigned char>(c)], 1);
        continue;
      }
    }
    if (!unk_token_) continue;  // no unk token: the character is dropped
    if (unk_id >= 0 && fuse_unk_) {
      unk_len += byte_len;
      continue;
    }
    if (unk_id >= 0) add(unk_id, unk_len);
    unk_id = unk_vocab_id();
    unk_len = byte_len;
  }
  if (unk_id >= 0) add(unk_id, unk_len);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::vector<QueuedMerge>& heap = s.heap;
  heap.clear();
  for (std::size_t k = 0; k + 1 < symbols.size(); ++k)
    if (const Merge* m = find_merge(symbols[k].c, symbols[k + 1].c)) heap.push_back({k, m->rank, m->new_id});
  std::make_heap(heap.begin(), heap.end(), Later{});
  auto push = [&](std::size_t pos, const Merge& m) {
    heap.push_back({pos, m.rank, m.new_id});
    std::push_heap(heap.begin(), heap.end(), Later{});
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Later{});
    const QueuedMerge top = heap.back();
    heap.pop_back();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const auto next_pos = static_cast<std::size_t>(cur.next);
    const Symbol right = symbols[next_pos];
    // An entry queued before a neighbour changed is stale unless the pair still makes its token.
    const Merge* now = find_merge(cur.c, right.c);
    if (!now || now->new_id != top.new_id) continue;
    cur.c = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::int32_t>(top.pos);
    if (cur.prev >= 0)
      if (const Merge* m = find_merge(symbols[static_cast<std::size_t>(cur.prev)].c, cur.c))
        push(static_cast<std::size_t>(cur.prev), *m);
    if (cur.next >= 0)
      if (const Merge* m = find_merge(cur.c, symbols[static_cast<std::size_t>(cur.next)].c)) push(top.pos, *m);
  }
  for (const Symbol& sym : symbols)
    if (sym.len != 0) out.push_back(sym.c);
}

}  // namespace hf::tokenizer
