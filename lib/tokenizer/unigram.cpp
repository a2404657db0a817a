// Unigram: the Viterbi lattice over a word, walked as HF's encode_optimized walks it.
#include "tokenizer/unigram.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "tokenizer/word_cache.h"

namespace hf::tokenizer {
namespace {

constexpr double kUnkPenalty = 10.0;

struct Node {
  std::int32_t id = -1;
  double score = 0;
  std::size_t start = 0;
  bool set = false;
};

inline std::size_t char_len(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

}  // namespace

Unigram::Unigram(const UnigramConfig& config) : byte_fallback_(config.byte_fallback), cache_key_(WordCache::new_owner()) {
  double min_score = std::numeric_limits<double>::infinity();
  for (std::size_t id = 0; id < config.vocab.size(); ++id) {
    const auto& [token, score] = config.vocab[id];
    vocab_.insert(token, static_cast<std::int32_t>(id));  // a later duplicate wins, as in HF's map
    tokens_.push_back(token);
    scores_.push_back(score);
    min_score = std::min(min_score, score);
  }
  vocab_.finish();
  unk_score_ = min_score - kUnkPenalty;
  if (config.unk_id) unk_id_ = *config.unk_id;
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char code[] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
    byte_ids_[b] = vocab_.find(std::string_view(code, sizeof code));
  }
}

std::string_view Unigram::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) return {};
  return tokens_[static_cast<std::size_t>(id)];
}

void Unigram::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  WordCache::lookup(cache_key_, word, out, [this](std::string_view w, std::vector<std::int32_t>& o) { encode(w, o); });
}

void Unigram::encode(std::string_view w, std::vector<std::int32_t>& out) const {
  const std::size_t n = w.size();
  thread_local std::vector<Node> best;
  best.assign(n + 1, Node{});
  auto no_unk = [] { return Error(ErrorKind::kDataErr, "Unigram: a piece is unknown and the model has no unk_id"); };
  const std::size_t max_len = vocab_.max_key_size();
  for (std::size_t start = 0; start < n;) {
    const double here = best[start].score;
    const std::size_t mblen = char_len(static_cast<unsigned char>(w[start]));
    bool single = false;
    // Every token that is a prefix of the rest, shortest first (a trie's common-prefix order).
    for (std::size_t end = start + mblen; end <= n && end - start <= max_len;
         end += end < n ? char_len(static_cast<unsigned char>(w[end])) : 1) {
      const std::int32_t id = vocab_.find(w.substr(start, end - start));
      if (id < 0) continue;
      const double candidate = scores_[static_cast<std::size_t>(id)] + here;
      Node& target = best[end];
      if (!target.set || candidate > target.score) target = Node{id, candidate, start, true};
      if (end - start == mblen) single = true;
    }
    if (!single) {
      Node& target = best[start + mblen];
      const double candidate = unk_score_ + here;
      if (!target.set || candidate > target.score) {
        if (unk_id_ < 0) throw no_unk();
        target = Node{unk_id_, candidate, start, true};
      }
    }
    start += mblen;
  }
  // Back from the end: pieces in reverse, runs of unk nodes fused into one piece.
  thread_local std::vector<std::pair<std::size_t, std::size_t>> pieces;
  pieces.clear();
  std::size_t unk_start = 0, unk_end = 0;
  bool in_unk = false;
  for (std::size_t end = n; end > 0;) {
    const Node& node = best[end];
    if (unk_id_ >= 0 && node.id == unk_id_) {
      if (!in_unk) unk_end = end;
      in_unk = true;
      unk_start = node.start;
    } else {
      if (in_unk) pieces.emplace_back(unk_start, unk_end);
      in_unk = false;
      pieces.emplace_back(node.start, end);
    }
    end = node.start;
  }
  if (in_unk) pieces.emplace_back(unk_start, unk_end);
  for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
    const std::string_view piece = w.substr(it->first, it->second - it->first);
    if (const std::int32_t id = vocab_.find(piece); id >= 0) {
      out.push_back(id);
      continue;
    }
    if (byte_fallback_ && std::all_of(piece.begin(), piece.end(),
                                      [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      for (char c : piece) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (unk_id_ < 0) throw no_unk();
    out.push_back(unk_id_);
  }
}

}  // namespace hf::tokenizer
