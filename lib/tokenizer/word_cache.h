// A per-thread cache of finished words (internal), as HF's BPE and Unigram keep one: natural text
// repeats its words, and a model's answer for a word never changes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hf::tokenizer {

class WordCache {
 public:
  // HF caches words shorter than 256 bytes, up to 10,000 of them.
  static constexpr std::size_t kMaxWord = 256;
  static constexpr std::size_t kCapacity = 10000;

  // A key no other model gets, for the lifetime of the program.
  static std::uint64_t new_owner() {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1);
  }

  // Appends the ids of `word` to `out`, from the cache of this thread when `owner` put them there,
  // else from `encode(word, out)`, remembered when there is room. One cache per thread, for the
  // last owner used on it: an owner's key is never reused, so a destroyed model's words are never
  // served to another.
  template <class Encode>
  static void lookup(std::uint64_t owner, std::string_view word, std::vector<std::int32_t>& out, Encode&& encode) {
    if (word.size() >= kMaxWord) {
      encode(word, out);
      return;
    }
    thread_local WordCache cache;
    if (cache.owner_ != owner) {
      cache.words_.clear();
      cache.owner_ = owner;
    }
    if (auto it = cache.words_.find(word); it != cache.words_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
    const std::size_t mark = out.size();
    encode(word, out);
    if (cache.words_.size() < kCapacity)
      cache.words_.emplace(std::string(word),
                           std::vector<std::int32_t>(out.begin() + static_cast<std::ptrdiff_t>(mark), out.end()));
  }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::uint64_t owner_ = 0;
  std::unordered_map<std::string, std::vector<std::int32_t>, Hash, std::equal_to<>> words_;
};

}  // namespace hf::tokenizer
