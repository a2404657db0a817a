// BertNormalizer: the ASCII table and the to-string form (the streaming part is in normalizer.h);
// the chain of other normalizers.
#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"

namespace hf::tokenizer {
namespace {

struct StringSink {
  std::string& out;
  void put(char32_t c) { unicode::append_utf8(out, c); }
};

}  // namespace

Normalizer::Normalizer(const NormalizerConfig& config) : config_(config), flags_(unicode::flag_table()) {
  for (char32_t b = 0; b < 128; ++b) {
    const std::uint8_t f = flags_[b];
    char32_t c = b;
    if (config_.clean_text && (f & unicode::kDrop)) {
      ascii_[b] = -1;
      continue;
    }
    if (config_.clean_text && (f & unicode::kWhitespace)) c = U' ';
    if (config_.lowercase && (flags_[c] & unicode::kLowercase)) {
      char32_t lower[3];
      unicode::lowercase(c, lower);  // one ASCII letter for ASCII input
      c = lower[0];
    }
    ascii_[b] = static_cast<std::int16_t>(c);
  }
}

std::string Normalizer::normalize(std::string_view text) const {
  std::string out;
  StringSink sink{out};
  CombiningRun run;
  normalize(text, sink, run);
  return out;
}

namespace {

#include "tokenizer/normalization_tables.inc"

// One bit per code point: kHfUnnormalized.
const std::vector<bool>& hf_unnormalized() {
  static const std::vector<bool> bits = [] {
    std::vector<bool> b(unicode::kMaxCodePoint + 1);
    for (const auto& r : kHfUnnormalized)
      for (char32_t c = r[0]; c <= r[1]; ++c) b[c] = true;
    return b;
  }();
  return bits;
}

// Unicode normalization form `options` (UTF8PROC_COMPOSE / DECOMPOSE, COMPAT) of `text`.
std::string utf8proc_form(std::string_view text, int options) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | options));
  if (n < 0) {
    std::free(out);
    throw Error(ErrorKind::kDataErr, std::string("normalizer: ") + utf8proc_errmsg(n));
  }
  std::string s(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return s;
}

template <class Fn>
void for_each_char(std::string_view text, Fn&& fn) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t at = i;
    const auto b = static_cast<unsigned char>(text[i]);
    const char32_t c = b < 0x80 ? (++i, static_cast<char32_t>(b)) : unicode::decode_utf8(text, i);
    fn(c, at, i);
  }
}

// The normalization form as HF computes it: characters only utf8proc's newer Unicode maps are, for
// HF, unassigned starters that stay as they are and block composition and reordering across them.
std::string hf_form(std::string_view text, int options) {
  const std::vector<bool>& keep = hf_unnormalized();
  std::string out;
  std::size_t segment = 0;
  for_each_char(text, [&](char32_t c, std::size_t at, std::size_t after) {
    if (c < 0x80 || !keep[c]) return;
    out += utf8proc_form(text.substr(segment, at - segment), options);
    out.append(text.substr(at, after - at));
    segment = after;
  });
  if (segment == 0) return utf8proc_form(text, options);
  out += utf8proc_form(text.substr(segment), options);
  return out;
}

}  // namespace

NormalizerChain::NormalizerChain(const std::vector<NormalizerStep>& steps) : steps_(steps) {
  for (const auto& st : steps_)
    if (st.type == NormalizerStep::Type::kBert) bert_.emplace_back(st.bert);
}

// `text` is valid UTF-8 (the caller checks).
std::string NormalizerChain::normalize(std::string_view text) const {
  std::string cur(text), next;
  const std::uint8_t* flags = unicode::flag_table();
  std::size_t bert = 0;
  for (const auto& st : steps_) {
    using T = NormalizerStep::Type;
    switch (st.type) {
      case T::kBert:
        cur = bert_[bert++].normalize(cur);
        break;
      case T::kNfc:
        cur = hf_form(cur, UTF8PROC_COMPOSE);
        break;
      case T::kNfd:
        cur = hf_form(cur, UTF8PROC_DECOMPOSE);
        break;
      case T::kNfkc:
        cur = hf_form(cur, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case T::kNfkd:
        cur = hf_form(cur, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case T::kLowercase:
        next.clear();
        for_each_char(cur, [&](char32_t c, std::size_t, std::size_t) {
          if (!(flags[c] & unicode::kLowercase)) {
            unicode::append_utf8(next, c);
            return;
          }
          char32_t lower[3];
          const int k = unicode::lowercase(c, lower);
          for (int j = 0; j < k; ++j) unicode::append_utf8(next, lower[j]);
        });
        cur.swap(next);
        break;
      case T::kStripAccents:
        next.clear();
        for_each_char(cur, [&](char32_t c, std::size_t at, std::size_t after) {
          if (!unicode::is_combining_mark(c)) next.append(cur, at, after - at);
        });
        cur.swap(next);
        break;
      case T::kStrip: {
        std::size_t begin = cur.size(), end = 0;  // the first and past the last non-whitespace
        for_each_char(cur, [&](char32_t c, std::size_t at, std::size_t after) {
          if (flags[c] & unicode::kWhitespace) return;
          begin = std::min(begin, at);
          end = after;
        });
        if (begin >= end) {
          cur.clear();
          break;
        }
        cur = cur.substr(st.left ? begin : 0, (st.right ? end : cur.size()) - (st.left ? begin : 0));
        break;
      }
      case T::kReplace: {
        next.clear();
        std::size_t from = 0;
        if (st.regex) {
          st.regex->for_each_match(cur, [&](std::size_t start, std::size_t end) {
            next.append(cur, from, start - from).append(st.content);
            from = end;
          });
          next.append(cur, from);
          cur.swap(next);
          break;
        }
        for (std::size_t at; (at = cur.find(st.pattern, from)) != std::string::npos; from = at + st.pattern.size())
          next.append(cur, from, at - from).append(st.content);
        next.append(cur, from);
        cur.swap(next);
        break;
      }
      case T::kPrepend:
        if (!cur.empty()) cur.insert(0, st.content);
        break;
      case T::kPrecompiled:
        next.clear();
        st.precompiled->normalize(cur, next);
        cur.swap(next);
        break;
    }
  }
  return cur;
}

}  // namespace hf::tokenizer
