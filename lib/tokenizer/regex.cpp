// PCRE2 behind the tokenizer's Regex patterns, and the syntax check against Oniguruma's reading.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <cctype>

#include "core/error.h"

namespace hf::tokenizer {
namespace {

// What Oniguruma (Ruby syntax) and PCRE2 read differently; empty when nothing.
std::string difference(std::string_view p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      switch (e) {
        case 'h': case 'H':
          return "\\" + std::string(1, e) + " is a hex digit class in Oniguruma, horizontal space in PCRE2";
        case 'w': case 'W': case 'b': case 'B':
          return "\\" + std::string(1, e) + ": Oniguruma's word characters are not PCRE2's";
        case 'Q':
          return "\\Q...\\E quoting is PCRE2's only";
        case 'p': case 'P': case 'd': case 'D': case 'X':
          // Seen in the golden test: \p{P} misses U+11F43, a Unicode 15 punctuation mark.
          return "\\" + std::string(1, e) + ": Unicode properties follow PCRE2's Unicode 14, not Oniguruma's newer one";
        case 'u':
          return "\\u escapes are Oniguruma's only";
        default:
          continue;
      }
    }
    if (p.compare(i, 2, "[:") == 0) {  // [:alpha:], [:^digit:]
      std::size_t k = i + 2;
      while (k < p.size() && (std::isalpha(static_cast<unsigned char>(p[k])) || p[k] == '^')) ++k;
      if (k > i + 2 && p.compare(k, 2, ":]") == 0) return "POSIX bracket classes differ between Oniguruma and PCRE2";
    }
    if (p.compare(i, 2, "(?") == 0) {
      // Inline options: (?imx-imx) or (?imx-imx:...).
      std::size_t k = i + 2;
      while (k < p.size() && (p[k] == 'i' || p[k] == 'm' || p[k] == 'x' || p[k] == '-')) ++k;
      const std::string_view flags = p.substr(i + 2, k - i - 2);
      if (k < p.size() && (p[k] == ')' || p[k] == ':')) {
        if (flags.find('i') != std::string_view::npos)
          return "(?i): Oniguruma folds case over several characters, PCRE2 one at a time";
        if (flags.find('m') != std::string_view::npos) return "(?m) means dot-all in Oniguruma, multiline in PCRE2";
      }
    }
  }
  return {};
}

// Oniguruma's \s is Unicode White_Space; PCRE2's (UCP) also takes U+180E. Written out instead.
constexpr std::string_view kSpaces =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// `p` with \s and \S spelled out; empty `error` unless refused.
std::string spell_out_spaces(std::string_view p, std::string& error) {
  std::string out;
  int depth = 0;  // inside a character class (Oniguruma nests them)
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char ch = p[i];
    if (ch == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      if (e == 's') {
        out += depth > 0 ? std::string(kSpaces) : "[" + std::string(kSpaces) + "]";
      } else if (e == 'S') {
        if (depth > 0) {
          error = "\\S inside a character class (its \\s is not PCRE2's)";
          return {};
        }
        out += "[^" + std::string(kSpaces) + "]";
      } else {
        out += ch;
        out += e;
      }
      continue;
    }
    if (ch == '[') {
      ++depth;
      out += ch;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (ch == ']' && depth > 0) --depth;
    out += ch;
  }
  return out;
}

pcre2_match_data* match_data() {
  // One ovector pair is enough: only the whole match is read.
  thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  return data.get();
}

}  // namespace

std::shared_ptr<const Regex> Regex::compile(std::string_view pattern, std::string& error) {
  error = difference(pattern);
  const std::string spelled = error.empty() ? spell_out_spaces(pattern, error) : std::string();
  if (!error.empty()) {
    error = "refused: " + error;
    return nullptr;
  }
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> context(
      pcre2_compile_context_create(nullptr), &pcre2_compile_context_free);
  pcre2_set_newline(context.get(), PCRE2_NEWLINE_LF);  // Oniguruma's only newline
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(spelled.data()), spelled.size(),
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &code, &offset, context.get());
  if (!compiled) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    error = "at offset " + std::to_string(offset) + ": " + reinterpret_cast<const char*>(message);
    return nullptr;
  }
  pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // interpreted when JIT is unavailable
  std::shared_ptr<Regex> r(new Regex());
  r->code_ = compiled;
  return r;
}

std::shared_ptr<const Regex> Regex::literal(std::string_view text) {
  std::string escaped, error;
  for (const char ch : text) {
    if (static_cast<unsigned char>(ch) < 0x80 && !std::isalnum(static_cast<unsigned char>(ch))) escaped += '\\';
    escaped += ch;
  }
  auto r = compile(escaped, error);
  if (!r) throw Error(ErrorKind::kInternal, "regex: cannot compile the literal '" + std::string(text) + "': " + error);
  return r;
}

bool Regex::can_match_empty() const {
  std::uint32_t min_length = 0;
  pcre2_pattern_info(static_cast<const pcre2_code*>(code_), PCRE2_INFO_MINLENGTH, &min_length);
  return min_length == 0;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool Regex::find(std::string_view text, std::size_t from, std::size_t& start, std::size_t& end) const {
  pcre2_match_data* md = match_data();
  const int rc = pcre2_match(static_cast<const pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(text.data()),
                             text.size(), from, PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof message);
    throw Error(ErrorKind::kDataErr, std::string("regex: ") + reinterpret_cast<const char*>(message));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  start = ov[0];
  end = ov[1] < ov[0] ? ov[0] : ov[1];  // \K can put the end before the start
  return true;
}

}  // namespace hf::tokenizer
