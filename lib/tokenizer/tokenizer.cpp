// The encoder: added tokens split from the raw text (HF AddedVocabulary), then per piece the
// normalizer -> pre-tokenizer -> model pipeline, then truncation (HF utils/truncation.rs), the
// post-processor template and padding. BERT's pipeline (BertNormalizer or none, BertPreTokenizer,
// WordPiece) runs fused and streaming, without building the normalized text; every other
// combination normalizes each piece to a string, pre-tokenizes it into words and hands those to
// the model.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <optional>

#include "core/error.h"
#include "core/thread_pool.h"
#include "tokenizer/config.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/wordpiece.h"

namespace hf::tokenizer {
namespace {

constexpr std::size_t kBatchGrain = 64;  // texts per thread-pool task

// The character before `end` / at `begin` of valid UTF-8 `text`.
char32_t char_before(std::string_view text, std::size_t end) {
  std::size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return static_cast<unsigned char>(text[start]) < 0x80 ? static_cast<unsigned char>(text[start])
                                                         : unicode::decode_utf8(text, start);
}
char32_t char_at(std::string_view text, std::size_t begin) {
  return static_cast<unsigned char>(text[begin]) < 0x80 ? static_cast<unsigned char>(text[begin])
                                                         : unicode::decode_utf8(text, begin);
}

// Added tokens split out of a text as HF's AddedVocabulary::find_matches does: leftmost-longest
// matches (its Aho-Corasick with MatchKind::LeftmostLongest), each searched after the previous
// match, kept or not, ends; a single_word token touching a word character is skipped; lstrip /
// rstrip widen a token over the whitespace before / after it (not into the previous token).
class AddedMatcher {
 public:
  void add(std::string pattern, const AddedToken& token) {
    if (!pattern.empty()) patterns_.push_back({std::move(pattern), token.id, token.single_word, token.lstrip, token.rstrip});
  }
  void finish() {
    std::sort(patterns_.begin(), patterns_.end(), [](const Pattern& x, const Pattern& y) {
      if (x.text[0] != y.text[0]) return static_cast<unsigned char>(x.text[0]) < static_cast<unsigned char>(y.text[0]);
      return x.text.size() > y.text.size();
    });
    bucket_.fill(0);
    for (const auto& p : patterns_) {
      first_.set(static_cast<unsigned char>(p.text[0]));
      ++bucket_[static_cast<unsigned char>(p.text[0]) + 1];
    }
    for (std::size_t b = 1; b < bucket_.size(); ++b) bucket_[b] += bucket_[b - 1];
  }
  bool empty() const { return patterns_.empty(); }

  // Calls gap(piece, offset) for the text between tokens and token(id) for each token, in order.
  template <class Gap, class Token>
  void split(std::string_view text, Gap&& gap, Token&& token) const {
    const std::uint8_t* flags = unicode::flag_table();
    const std::uint8_t* words = unicode::split_table();
    std::size_t search = 0, done = 0;  // where the next search starts; the end of the last token
    while (const Pattern* p = find(text, search)) {
      std::size_t start = search, stop = search + p->text.size();
      search = stop;
      if (p->single_word && ((start > 0 && (words[char_before(text, start)] & unicode::kWordChar)) ||
                             (stop < text.size() && (words[char_at(text, stop)] & unicode::kWordChar))))
        continue;
      if (p->lstrip) {
        while (start > done && (flags[char_before(text, start)] & unicode::kWhitespace)) {
          --start;
          while ((static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        }
      }
      if (p->rstrip) {
        while (stop < text.size()) {
          std::size_t after = stop;
          const auto b = static_cast<unsigned char>(text[stop]);
          if (!(flags[b < 0x80 ? (++after, static_cast<char32_t>(b)) : unicode::decode_utf8(text, after)] &
                unicode::kWhitespace))
            break;
          stop = after;
        }
      }
      if (done < start) gap(text.substr(done, start - done), done);
      token(p->id);
      done = stop;
    }
    if (done < text.size()) gap(text.substr(done), done);
  }

 private:
  struct Pattern {
    std::string text;
    std::int32_t id;
    bool single_word, lstrip, rstrip;
  };

  // The leftmost-longest match at or after `from`, which becomes its position; null when none.
  const Pattern* find(std::string_view text, std::size_t& from) const {
    for (std::size_t i = from; i < text.size(); ++i) {
      auto b = static_cast<unsigned char>(text[i]);
      if (!first_.test(b)) continue;
      for (std::uint32_t k = bucket_[b]; k < bucket_[b + 1]; ++k) {
        const std::string& p = patterns_[k].text;
        if (text.compare(i, p.size(), p) == 0) {
          from = i;
          return &patterns_[k];
        }
      }
    }
    return nullptr;
  }

  std::vector<Pattern> patterns_;  // by first byte, longest first
  std::bitset<256> first_;
  std::array<std::uint32_t, 257> bucket_{};
};

// Per-thread buffers so that encoding allocates only its results.
struct Scratch {
  std::string word;
  CombiningRun run;
  std::string normalized;
  std::vector<std::int32_t> first, second;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

struct Tokenizer::Impl {
  explicit Impl(TokenizerConfig c);

  void encode_sequence(std::string_view text, std::vector<std::int32_t>& out, Scratch& s) const;
  void encode_piece(std::string_view piece, bool at_start, std::vector<std::int32_t>& out, Scratch& s) const;
  void encode_piece_general(std::string_view piece, bool at_start, std::vector<std::int32_t>& out, Scratch& s) const;
  void tokenize_word(std::string_view word, std::vector<std::int32_t>& out) const;
  std::int32_t model_token_to_id(std::string_view token) const;
  Encoding assemble(std::vector<std::int32_t>& a, std::vector<std::int32_t>* b, const EncodeOptions& o) const;
  void pad(Encoding& e, std::size_t target) const;

  TokenizerConfig config;
  std::optional<WordPiece> wordpiece;  // the model: exactly one of these is set
  std::optional<Bpe> bpe;
  std::optional<Unigram> unigram;
  Normalizer normalizer;
  NormalizerChain normalizers;
  PreTokenizer pre_tokenizer;
  bool fused_bert = false;  // BertPreTokenizer + WordPiece: the streaming path
  const std::uint8_t* flags = unicode::flag_table();
  AddedMatcher raw_added, normalized_added;
  std::size_t n_special[2] = {0, 0};
  enum AsciiKind : std::uint8_t { kWordChar, kSpace, kPunctChar };
  std::array<AsciiKind, 128> ascii_kind{};
  std::array<std::int32_t, 128> ascii_punct_id{};  // WordPiece of the one-character word
  std::int32_t pad_id = -1, cls_id = -1, sep_id = -1;
};

namespace {

// BertPreTokenizer + WordPiece as a normalizer sink: whitespace ends a word, punctuation ends a
// word and is a word of its own, every finished word goes through WordPiece. ASCII stays inline;
// the word is built in the caller's buffer without per-character capacity checks.
class WordSink {
 public:
  WordSink(const Tokenizer::Impl& t, std::string& buffer, std::vector<std::int32_t>& out)
      : t_(t), buffer_(buffer), out_(out) {
    if (buffer_.size() < 256) buffer_.resize(256);
    data_ = buffer_.data();
    cap_ = buffer_.size();
  }

  [[gnu::always_inline]] void put(char32_t c) {
    if (c < 0x80) [[likely]] {
      const auto kind = t_.ascii_kind[c];
      if (kind == Tokenizer::Impl::kWordChar) {
        if (size_ == cap_) [[unlikely]] grow();
        data_[size_++] = static_cast<char>(c);
        ++chars_;
        return;
      }
      flush();
      if (kind == Tokenizer::Impl::kPunctChar) out_.push_back(t_.ascii_punct_id[c]);
      return;
    }
    put_other(c);
  }

  void flush() {
    if (chars_ == 0) return;
    t_.wordpiece->tokenize(std::string_view(data_, size_), chars_, out_);
    size_ = 0;
    chars_ = 0;
  }

 private:
  [[gnu::noinline]] void put_other(char32_t c) {
    const std::uint8_t f = t_.flags[c];
    if (f & unicode::kWhitespace) {
      flush();
      return;
    }
    if (f & unicode::kPunct) flush();
    if (size_ + 4 > cap_) grow();
    size_ += unicode::encode_utf8(c, data_ + size_);
    ++chars_;
    if (f & unicode::kPunct) flush();
  }

  [[gnu::noinline]] void grow() {
    if (chars_ > t_.wordpiece->max_input_chars_per_word()) {  // [UNK] whatever follows: keep counting only
      size_ = 0;
      return;
    }
    buffer_.resize(buffer_.size() * 2);
    data_ = buffer_.data();
    cap_ = buffer_.size();
  }

  const Tokenizer::Impl& t_;
  std::string& buffer_;
  std::vector<std::int32_t>& out_;
  char* data_;
  std::size_t cap_;
  std::size_t size_ = 0;
  std::size_t chars_ = 0;
};

std::size_t count_special(const std::vector<TemplatePiece>& pieces) {
  std::size_t n = 0;
  for (const auto& p : pieces) n += p.ids.size();
  return n;
}

}  // namespace

Tokenizer::Impl::Impl(TokenizerConfig c)
    : config(std::move(c)),
      normalizer(config.normalizer),
      normalizers(config.normalizers),
      pre_tokenizer(config.pre_tokenizers) {
  switch (config.model_type) {
    case ModelType::kWordPiece:
      wordpiece.emplace(config.model);
      break;
    case ModelType::kBpe:
      bpe.emplace(config.bpe);
      break;
    case ModelType::kUnigram:
      unigram.emplace(config.unigram);
      break;
  }
  fused_bert = wordpiece && normalizers.empty() && config.pre_tokenizers.size() == 1 &&
               config.pre_tokenizers[0].type == PreTokenizerConfig::Type::kBert;
  for (const auto& a : config.added_tokens) {
    if (a.normalized) {
      normalized_added.add(normalizers.empty() ? normalizer.normalize(a.content) : normalizers.normalize(a.content), a);
    } else {
      raw_added.add(a.content, a);
    }
  }
  raw_added.finish();
  normalized_added.finish();
  config.model.vocab.clear();  // the model has its own copy
  config.model.vocab.shrink_to_fit();
  config.bpe = BpeConfig{};
  config.unigram = UnigramConfig{};
  if (config.has_post_processor) {
    n_special[0] = count_special(config.single);
    n_special[1] = count_special(config.pair);
  }
  for (char32_t b = 0; fused_bert && b < 128; ++b) {
    if (flags[b] & unicode::kWhitespace) {
      ascii_kind[b] = kSpace;
    } else if (flags[b] & unicode::kPunct) {
      ascii_kind[b] = kPunctChar;
      std::vector<std::int32_t> ids;
      wordpiece->tokenize(std::string(1, static_cast<char>(b)), 1, ids);
      ascii_punct_id[b] = ids.at(0);
    } else {
      ascii_kind[b] = kWordChar;
    }
  }
  auto lookup = [&](const std::string& token) {
    for (const auto& a : config.added_tokens)
      if (a.content == token) return a.id;
    return model_token_to_id(token);
  };
  pad_id = config.pad_id >= 0 ? config.pad_id : lookup(config.pad_token);
  cls_id = lookup(config.cls_token);
  sep_id = lookup(config.sep_token);
}

std::int32_t Tokenizer::Impl::model_token_to_id(std::string_view token) const {
  if (wordpiece) return wordpiece->token_to_id(token);
  return bpe ? bpe->token_to_id(token) : unigram->token_to_id(token);
}

void Tokenizer::Impl::tokenize_word(std::string_view word, std::vector<std::int32_t>& out) const {
  if (bpe) {
    bpe->tokenize(word, out);
    return;
  }
  if (unigram) {
    unigram->tokenize(word, out);
    return;
  }
  std::size_t chars = 0;
  for (char c : word) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  wordpiece->tokenize(word, chars, out);
}

namespace {

void check_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
    } else {
      unicode::decode_utf8(text, i);
    }
  }
}

}  // namespace

// HF order: normalize the piece, split it at added tokens matching the normalized text, and
// pre-tokenize each non-empty part on its own (so ByteLevel's prefix space goes before each).
void Tokenizer::Impl::encode_piece_general(std::string_view piece, bool at_start, std::vector<std::int32_t>& out,
                                           Scratch& s) const {
  std::string_view text = piece;
  if (config.normalizer.enabled) {
    s.normalized = normalizer.normalize(piece);
    text = s.normalized;
  } else {
    check_utf8(piece);
    if (!normalizers.empty()) {
      s.normalized = normalizers.normalize(piece);
      text = s.normalized;
    }
  }
  const WordFn word = [&](std::string_view w) { tokenize_word(w, out); };
  bool first = at_start;
  auto part = [&](std::string_view p, std::size_t) {
    if (!p.empty()) pre_tokenizer.split(p, first, word);
    first = false;
  };
  if (normalized_added.empty()) {
    part(text, 0);
    return;
  }
  normalized_added.split(text, part, [&](std::int32_t id) {
    first = false;
    out.push_back(id);
  });
}

void Tokenizer::Impl::encode_piece(std::string_view piece, bool at_start, std::vector<std::int32_t>& out,
                                   Scratch& s) const {
  if (piece.empty()) return;
  if (!fused_bert) {
    encode_piece_general(piece, at_start, out, s);
    return;
  }
  if (normalized_added.empty()) {
    WordSink sink(*this, s.word, out);
    normalizer.normalize(piece, sink, s.run);
    sink.flush();
    return;
  }
  // Added tokens with normalized=true match the normalized text.
  s.normalized = normalizer.normalize(piece);
  std::string_view text = s.normalized;
  WordSink sink(*this, s.word, out);
  auto pretokenize = [&](std::string_view part, std::size_t) {
    for (std::size_t i = 0; i < part.size();) {
      auto b = static_cast<unsigned char>(part[i]);
      sink.put(b < 0x80 ? (++i, static_cast<char32_t>(b)) : unicode::decode_utf8(part, i));
    }
    sink.flush();
  };
  normalized_added.split(text, pretokenize, [&](std::int32_t id) { out.push_back(id); });
}

void Tokenizer::Impl::encode_sequence(std::string_view text, std::vector<std::int32_t>& out, Scratch& s) const {
  out.clear();
  if (raw_added.empty()) {
    encode_piece(text, true, out, s);
    return;
  }
  raw_added.split(
      text, [&](std::string_view piece, std::size_t offset) { encode_piece(piece, offset == 0, out, s); },
      [&](std::int32_t id) { out.push_back(id); });
}

namespace {

// HF truncate_encodings with max_length `limit` (special tokens already subtracted). Returns
// whether anything was cut.
bool truncate(std::vector<std::int32_t>& a, std::vector<std::int32_t>* b, std::size_t limit, Truncation strategy) {
  const std::size_t la = a.size(), lb = b ? b->size() : 0;
  if (limit == 0) {  // HF empties both, whatever the strategy
    a.clear();
    if (b) b->clear();
    return la + lb > 0;
  }
  const std::size_t total = la + lb;
  if (total <= limit) return false;
  const std::size_t to_remove = total - limit;
  if (strategy == Truncation::kLongestFirst) {
    if (!b) {
      a.resize(limit);
      return true;
    }
    // n1 is the shorter one: it keeps everything if the longer one can take the rest, otherwise
    // both get half (the second one of equal pair, or the longer one, the odd token).
    std::size_t n1 = la, n2 = lb;
    const bool swapped = n1 > n2;
    if (swapped) std::swap(n1, n2);
    n2 = n1 > limit ? n1 : std::max(n1, limit - n1);
    if (n1 + n2 > limit) {
      n1 = limit / 2;
      n2 = n1 + limit % 2;
    }
    if (swapped) std::swap(n1, n2);
    a.resize(std::min(la, n1));
    b->resize(std::min(lb, n2));
    return true;
  }
  std::vector<std::int32_t>* target = &a;
  if (strategy == Truncation::kOnlySecond) {
    if (!b) throw Error(ErrorKind::kDataErr, "truncation only_second: there is no second sequence");
    target = b;
  }
  if (target->size() <= to_remove)
    throw Error(ErrorKind::kDataErr, std::string("truncation ") +
                                         (strategy == Truncation::kOnlyFirst ? "only_first" : "only_second") +
                                         ": the sequence to truncate is too short to respect max_length");
  target->resize(target->size() - to_remove);
  return true;
}

}  // namespace

Encoding Tokenizer::Impl::assemble(std::vector<std::int32_t>& a, std::vector<std::int32_t>* b,
                                   const EncodeOptions& o) const {
  Encoding e;
  const std::size_t added = n_special[b ? 1 : 0];
  // HF computes max_length - added in unsigned arithmetic: below `added` it wraps around, which
  // means no truncation at all.
  if (o.max_length > 0 && o.max_length >= added) e.truncated = truncate(a, b, o.max_length - added, o.truncation);

  const std::size_t n = a.size() + (b ? b->size() : 0) + added;
  const std::size_t target = o.padding == Padding::kMaxLength ? std::max(n, o.max_length) : n;
  e.ids.reserve(target);
  e.type_ids.reserve(target);
  auto append = [&](const std::vector<std::int32_t>& ids, std::int32_t type) {
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    e.type_ids.insert(e.type_ids.end(), ids.size(), type);
  };
  if (!config.has_post_processor) {
    append(a, 0);
    if (b) append(*b, 1);
  } else {
    for (const TemplatePiece& p : b ? config.pair : config.single) {
      if (!p.is_sequence) {
        append(p.ids, p.type_id);
      } else if (p.sequence == 0) {
        append(a, p.type_id);
      } else if (b) {
        append(*b, p.type_id);
      }
    }
  }
  e.length = e.ids.size();
  if (o.padding == Padding::kMaxLength) pad(e, o.max_length);
  return e;
}

void Tokenizer::Impl::pad(Encoding& e, std::size_t target) const {
  if (e.ids.size() >= target) return;
  if (pad_id < 0) throw Error(ErrorKind::kConfig, "padding: the tokenizer has no pad token '" + config.pad_token + "'");
  e.ids.resize(target, pad_id);
  e.type_ids.resize(target, config.pad_type_id);
}

Tokenizer Tokenizer::load(const std::string& path) {
  return Tokenizer(std::make_shared<const Impl>(load_config(path)));
}

Encoding Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  Scratch& s = scratch();
  impl_->encode_sequence(text, s.first, s);
  return impl_->assemble(s.first, nullptr, options);
}

Encoding Tokenizer::encode_pair(std::string_view first, std::string_view second, const EncodeOptions& options) const {
  Scratch& s = scratch();
  impl_->encode_sequence(first, s.first, s);
  impl_->encode_sequence(second, s.second, s);
  return impl_->assemble(s.first, &s.second, options);
}

namespace {

void pad_batch(const Tokenizer::Impl& t, std::vector<Encoding>& out, const EncodeOptions& options) {
  if (options.padding != Padding::kLongest) return;
  std::size_t longest = 0;
  for (const auto& e : out) longest = std::max(longest, e.ids.size());
  for (auto& e : out) t.pad(e, longest);
}

template <class Fn>
void for_each_index(std::size_t n, ThreadPool* pool, Fn&& fn) {
  if (!pool || n <= kBatchGrain) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  pool->parallel_for(n, kBatchGrain, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) fn(i);
  });
}

}  // namespace

std::vector<Encoding> Tokenizer::encode_batch(std::span<const std::string_view> texts, const EncodeOptions& options,
                                              ThreadPool* pool) const {
  std::vector<Encoding> out(texts.size());
  for_each_index(texts.size(), pool, [&](std::size_t i) { out[i] = encode(texts[i], options); });
  pad_batch(*impl_, out, options);
  return out;
}

std::vector<Encoding> Tokenizer::encode_batch(std::span<const std::string_view> first,
                                              std::span<const std::string_view> second, const EncodeOptions& options,
                                              ThreadPool* pool) const {
  if (first.size() != second.size())
    throw Error(ErrorKind::kInternal, "encode_batch: " + std::to_string(first.size()) + " first texts but " +
                                          std::to_string(second.size()) + " second texts");
  std::vector<Encoding> out(first.size());
  for_each_index(first.size(), pool, [&](std::size_t i) { out[i] = encode_pair(first[i], second[i], options); });
  pad_batch(*impl_, out, options);
  return out;
}

std::size_t Tokenizer::vocab_size() const {
  if (impl_->wordpiece) return impl_->wordpiece->vocab_size();
  return impl_->bpe ? impl_->bpe->vocab_size() : impl_->unigram->vocab_size();
}

std::int32_t Tokenizer::token_to_id(std::string_view token) const {
  for (const auto& a : impl_->config.added_tokens)
    if (a.content == token) return a.id;
  return impl_->model_token_to_id(token);
}

std::string Tokenizer::id_to_token(std::int32_t id) const {
  for (const auto& a : impl_->config.added_tokens)
    if (a.id == id) return a.content;
  if (impl_->wordpiece) return std::string(impl_->wordpiece->id_to_token(id));
  return std::string(impl_->bpe ? impl_->bpe->id_to_token(id) : impl_->unigram->id_to_token(id));
}

std::int32_t Tokenizer::pad_id() const { return impl_->pad_id; }
std::int32_t Tokenizer::cls_id() const { return impl_->cls_id; }
std::int32_t Tokenizer::sep_id() const { return impl_->sep_id; }
std::int32_t Tokenizer::unk_id() const {
  if (impl_->wordpiece) return impl_->wordpiece->unk_id();
  return impl_->bpe ? impl_->bpe->unk_id() : impl_->unigram->unk_id();
}
std::size_t Tokenizer::num_special_tokens(bool pair) const { return impl_->n_special[pair ? 1 : 0]; }
const EncodeOptions& Tokenizer::file_options() const { return impl_->config.file_options; }
const std::string& Tokenizer::sha256() const { return impl_->config.sha256; }

}  // namespace hf::tokenizer
