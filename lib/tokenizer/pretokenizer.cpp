// ByteLevel (GPT-2's split regex through PCRE2, then bytes mapped to printable characters) and the
// BERT pre-tokenizer, for the general pipeline.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include <array>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace hf::tokenizer {
namespace {

// HF's regex (tokenizers/src/pre_tokenizers/byte_level.rs), matched there by Oniguruma, whose \s
// is Unicode White_Space. PCRE2's \s under UCP leaves out U+0085, so the class is spelled out.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\t-\r\x{85}\p{Z}\p{L}\p{N}]+)"
    R"(|[\t-\r\x{85}\p{Z}]+(?![^\t-\r\x{85}\p{Z}])|[\t-\r\x{85}\p{Z}]+)";

// GPT-2's byte -> character table: printable Latin-1 bytes stand for themselves, the other 68
// take U+0100 onwards in byte order. Each as UTF-8 (1 or 2 bytes).
struct ByteMap {
  std::array<std::array<char, 2>, 256> utf8{};
  std::array<std::uint8_t, 256> size{};
  ByteMap() {
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char buf[4] = {};
      size[b] = static_cast<std::uint8_t>(unicode::encode_utf8(printable ? static_cast<char32_t>(b) : next++, buf));
      utf8[b] = {buf[0], buf[1]};
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Regex() { pcre2_code_free(code); }

  // Per-thread match data, sized for this pattern.
  pcre2_match_data* match_data() const {
    struct Holder {
      pcre2_match_data* data = nullptr;
      ~Holder() { pcre2_match_data_free(data); }
    };
    thread_local Holder h;
    if (!h.data) h.data = pcre2_match_data_create(4, nullptr);
    return h.data;
  }
};

PreTokenizer::PreTokenizer(std::vector<PreTokenizerConfig> steps) : steps_(std::move(steps)) {
  for (const auto& s : steps_) {
    if (s.type != PreTokenizerConfig::Type::kByteLevel || !s.use_regex || gpt2_) continue;
    gpt2_ = std::make_unique<Regex>();
    int err = 0;
    PCRE2_SIZE offset = 0;
    gpt2_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
    if (!gpt2_->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw Error(ErrorKind::kConfig, std::string("pre_tokenizer ByteLevel: PCRE2: ") + reinterpret_cast<char*>(msg));
    }
    // Without JIT (some platforms) the interpreter gives the same matches, only slower.
    gpt2_->jit = pcre2_jit_compile(gpt2_->code, PCRE2_JIT_COMPLETE) == 0;
  }
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;

void PreTokenizer::split(std::string_view text, const WordFn& word) const { run(0, text, word); }

void PreTokenizer::run(std::size_t step, std::string_view text, const WordFn& word) const {
  if (text.empty()) return;
  if (step == steps_.size()) {
    word(text);
    return;
  }
  const PreTokenizerConfig& c = steps_[step];
  auto next = [&](std::string_view part) { run(step + 1, part, word); };
  switch (c.type) {
    case PreTokenizerConfig::Type::kByteLevel:
      byte_level(step, c, text, next);
      return;
    case PreTokenizerConfig::Type::kBert: {
      // Whitespace separates and is dropped; punctuation is a word of its own.
      const std::uint8_t* flags = unicode::flag_table();
      std::size_t start = 0;
      for (std::size_t i = 0; i < text.size();) {
        const std::size_t at = i;
        const auto b = static_cast<unsigned char>(text[i]);
        const char32_t ch = b < 0x80 ? (++i, static_cast<char32_t>(b)) : unicode::decode_utf8(text, i);
        const std::uint8_t f = flags[ch];
        if (!(f & (unicode::kWhitespace | unicode::kPunct))) continue;
        next(text.substr(start, at - start));
        if (f & unicode::kPunct) next(text.substr(at, i - at));
        start = i;
      }
      next(text.substr(start));
      return;
    }
  }
}

void PreTokenizer::byte_level(std::size_t step, const PreTokenizerConfig& c, std::string_view text,
                              const WordFn& word) const {
  // Buffers per step, since a later step of a Sequence may be another ByteLevel.
  thread_local std::vector<std::string> buffers;
  if (buffers.size() < 2 * steps_.size()) buffers.resize(2 * steps_.size());
  std::string& prefixed = buffers[2 * step];
  std::string& mapped = buffers[2 * step + 1];
  if (c.add_prefix_space && text.front() != ' ') {
    prefixed.assign(1, ' ');
    prefixed.append(text);
    text = prefixed;
  }
  const ByteMap& m = byte_map();
  auto emit = [&](std::string_view part) {
    mapped.clear();
    for (char ch : part) {
      const auto b = static_cast<unsigned char>(ch);
      mapped.append(m.utf8[b].data(), m.size[b]);
    }
    word(mapped);
  };
  if (!c.use_regex) {
    emit(text);
    return;
  }
  pcre2_match_data* md = gpt2_->match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t at = 0;
  while (at < text.size()) {
    const int rc = gpt2_->jit ? pcre2_jit_match(gpt2_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, md, nullptr)
                              : pcre2_match(gpt2_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, md, nullptr);
    // Every character is a letter, a number, whitespace or something else: each position matches.
    if (rc < 0) throw Error(ErrorKind::kInternal, "pre_tokenizer ByteLevel: regex match failed (" + std::to_string(rc) + ")");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[0] > at) emit(text.substr(at, ov[0] - at));  // never, but kept by HF's Isolated split
    if (ov[1] == ov[0]) throw Error(ErrorKind::kInternal, "pre_tokenizer ByteLevel: empty regex match");
    emit(text.substr(ov[0], ov[1] - ov[0]));
    at = ov[1];
  }
}

}  // namespace hf::tokenizer
