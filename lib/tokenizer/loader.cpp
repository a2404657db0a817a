// Reads tokenizer.json (HF tokenizers' serialization) or vocab.txt + tokenizer_config.json into a
// TokenizerConfig, refusing anything the encoder does not reproduce exactly.
// Format: https://huggingface.co/docs/tokenizers/api/tokenizer (Tokenizer.from_file / to_str).
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/config.h"
#include "tokenizer/unicode.h"

namespace hf::tokenizer {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& msg) const {
    throw Error(ErrorKind::kConfig, Where{path_, 0, field}, msg);
  }
  const Json& object(const Json& j, const char* key, const std::string& field) const {
    auto it = j.find(key);
    if (it == j.end() || !it->is_object()) fail(field, "expected an object");
    return *it;
  }
  bool boolean(const Json& j, const char* key, bool def, const std::string& field) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_boolean()) fail(field, "expected true or false");
    return it->get<bool>();
  }
  std::string string(const Json& j, const char* key, const std::string& def, const std::string& field) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_string()) fail(field, "expected a string");
    return it->get<std::string>();
  }
  std::int64_t integer(const Json& j, const char* key, std::int64_t def, const std::string& field) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_number_integer()) fail(field, "expected an integer");
    return it->get<std::int64_t>();
  }
  std::int32_t id(const Json& v, const std::string& field) const {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > INT32_MAX)
      fail(field, "expected a token id");
    return v.get<std::int32_t>();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// serde_json's f64 parse (de.rs, no float_roundtrip): the decimal digits as a u64 significand (digits
// past u64's range: integer ones scale by 10, fraction ones are dropped), then one multiplication or
// division by an exact power of ten. `fallback` for anything it does not expect.
double serde_f64(std::string_view text, double fallback) {
  // serde's POW10 table: the literals 1e0 .. 1e308, i.e. correctly rounded.
  static const std::vector<double> kPow10 = [] {
    std::vector<double> t;
    for (int n = 0; n <= 308; ++n) t.push_back(std::strtod(("1e" + std::to_string(n)).c_str(), nullptr));
    return t;
  }();
  std::size_t i = 0;
  const bool negative = i < text.size() && text[i] == '-';
  if (negative) ++i;
  std::uint64_t significand = 0;
  std::int64_t exponent = 0;
  bool overflow = false;
  auto digit = [&](bool fraction) {
    const auto d = static_cast<std::uint64_t>(text[i] - '0');
    if (!overflow && (significand > (UINT64_MAX - d) / 10)) overflow = true;
    if (!overflow) {
      significand = significand * 10 + d;
      if (fraction) --exponent;
    } else if (!fraction) {
      ++exponent;
    }
    ++i;
  };
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') digit(false);
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') digit(true);
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool neg_exp = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) neg_exp = text[i++] == '-';
    std::int64_t e = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && e < 100000) e = e * 10 + (text[i++] - '0');
    exponent += neg_exp ? -e : e;
  }
  if (i != text.size() || exponent > 308) return fallback;  // serde_json refuses these
  double f = static_cast<double>(significand);
  while (exponent < -308 && f != 0) {
    f /= 1e308;
    exponent += 308;
  }
  if (exponent >= 0) {
    f *= kPow10[static_cast<std::size_t>(exponent)];
  } else if (exponent >= -308) {
    f /= kPow10[static_cast<std::size_t>(-exponent)];
  }
  return negative ? -f : f;
}

// tokenizer.json as a JSON DOM, except "model"."vocab" (30,000+ entries), which goes straight into
// a vector: building it as a std::map-backed JSON object would cost more than all other loading.
class TokenizerJsonParser : public nlohmann::json_sax<Json> {
 public:
  Json root;
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  bool saw_vocab = false;
  std::string error;

  bool null() override { return value(Json(nullptr)); }
  bool boolean(bool v) override { return value(Json(v)); }
  bool number_integer(number_integer_t v) override { return in_vocab() ? vocab_id(v) : value(Json(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    return in_vocab() ? vocab_id(v <= INT32_MAX ? static_cast<std::int64_t>(v) : -1) : value(Json(v));
  }
  // Re-read as tokenizers (serde_json without float_roundtrip) reads it, which can be one ulp off
  // the correctly rounded value: Unigram scores must be HF's very doubles for its ties.
  bool number_float(number_float_t v, const string_t& text) override { return value(Json(serde_f64(text, v))); }
  bool string(string_t& v) override { return value(Json(std::move(v))); }
  bool binary(binary_t&) override { return bad("unexpected binary value"); }
  bool start_object(std::size_t) override {
    if (in_vocab()) return bad("model.vocab: expected token ids");
    if (stack_.size() == 2 && keys_[0] == "model" && keys_[1] == "vocab" && stack_[1]->is_object()) {
      saw_vocab = true;
      stack_.push_back(nullptr);  // marks the vocab object
    } else {
      stack_.push_back(place(Json::object()));
    }
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    keys_.back() = std::move(k);
    return true;
  }
  bool end_object() override { return pop(); }
  bool start_array(std::size_t) override {
    if (in_vocab()) return bad("model.vocab: expected token ids");
    stack_.push_back(place(Json::array()));
    keys_.emplace_back();
    return true;
  }
  bool end_array() override { return pop(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return bad(e.what());
  }

 private:
  bool in_vocab() const { return !stack_.empty() && stack_.back() == nullptr; }
  bool vocab_id(std::int64_t id) {
    if (id < 0 || id > INT32_MAX) return bad("model.vocab: expected token ids");
    vocab.emplace_back(keys_.back(), static_cast<std::int32_t>(id));
    return true;
  }
  bool value(Json v) {
    if (in_vocab()) return bad("model.vocab: expected token ids");
    place(std::move(v));
    return true;
  }
  Json* place(Json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    Json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    Json& slot = top[keys_.back()];
    slot = std::move(v);
    return &slot;
  }
  bool pop() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool bad(std::string msg) {
    if (error.empty()) error = std::move(msg);
    return false;
  }

  std::vector<Json*> stack_;
  std::vector<std::string> keys_;
};

Json parse_json(const std::string& path) {
  std::string text = read_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
    throw Error(ErrorKind::kConfig, path + ": invalid JSON: " + e.what());
  }
}

// Base64 with the standard alphabet and '=' padding, as the base64 crate's STANDARD engine reads it
// (padding required, no stray bits in the last character). False when `text` is not that.
bool base64_decode(std::string_view text, std::string& out) {
  auto sextet = [](char ch) -> int {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
  };
  if (text.size() % 4 != 0) return false;
  out.clear();
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    std::uint32_t bits = 0;
    for (int k = 0; k < 4 - pad; ++k) {
      const int v = sextet(text[i + static_cast<std::size_t>(k)]);
      if (v < 0) return false;
      bits |= static_cast<std::uint32_t>(v) << (18 - 6 * k);
    }
    if ((pad == 1 && (bits & 0xFF)) || (pad == 2 && (bits & 0xFFFF))) return false;
    out.push_back(static_cast<char>(bits >> 16));
    if (pad < 2) out.push_back(static_cast<char>((bits >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(bits & 0xFF));
  }
  return true;
}

// "pattern": {"Regex": ...} compiled (refused as Regex::compile says), or {"String": ...} into
// `literal` (then nullptr).
std::shared_ptr<const Regex> read_pattern(const Reader& r, const Json& p, const std::string& field, std::string& literal) {
  const Json& pattern = r.object(p, "pattern", field + ".pattern");
  if (pattern.contains("Regex")) {
    std::string error;
    auto regex = Regex::compile(r.string(pattern, "Regex", "", field + ".pattern.Regex"), error);
    if (!regex) r.fail(field + ".pattern.Regex", error);
    return regex;
  }
  if (!pattern.contains("String")) r.fail(field + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
  literal = r.string(pattern, "String", "", field + ".pattern.String");
  return nullptr;
}

void read_bert_normalizer(const Reader& r, const Json& p, NormalizerConfig& n, const std::string& field) {
  n.clean_text = r.boolean(p, "clean_text", true, field + ".clean_text");
  n.handle_chinese_chars = r.boolean(p, "handle_chinese_chars", true, field + ".handle_chinese_chars");
  n.lowercase = r.boolean(p, "lowercase", true, field + ".lowercase");
  // Unset strip_accents follows lowercase (HF BertNormalizer).
  n.strip_accents = r.boolean(p, "strip_accents", n.lowercase, field + ".strip_accents");
}

// One normalizer into `steps` (a Sequence adds its members in order).
void read_normalizer_steps(const Reader& r, const Json& p, const std::string& field, std::vector<NormalizerStep>& steps) {
  if (!p.is_object()) r.fail(field, "expected an object");
  const std::string type = r.string(p, "type", "", field + ".type");
  NormalizerStep st;
  using T = NormalizerStep::Type;
  if (type == "Sequence") {
    auto list = p.find("normalizers");
    if (list == p.end() || !list->is_array()) r.fail(field + ".normalizers", "expected a list");
    for (const Json& q : *list) read_normalizer_steps(r, q, field + ".normalizers", steps);
    return;
  } else if (type == "BertNormalizer") {
    st.type = T::kBert;
    read_bert_normalizer(r, p, st.bert, field);
  } else if (type == "NFC") {
    st.type = T::kNfc;
  } else if (type == "NFD") {
    st.type = T::kNfd;
  } else if (type == "NFKC") {
    st.type = T::kNfkc;
  } else if (type == "NFKD") {
    st.type = T::kNfkd;
  } else if (type == "Lowercase") {
    st.type = T::kLowercase;
  } else if (type == "StripAccents") {
    st.type = T::kStripAccents;
  } else if (type == "Strip") {
    st.type = T::kStrip;
    st.left = r.boolean(p, "strip_left", true, field + ".strip_left");
    st.right = r.boolean(p, "strip_right", true, field + ".strip_right");
  } else if (type == "Prepend") {
    st.type = T::kPrepend;
    st.content = r.string(p, "prepend", "", field + ".prepend");
  } else if (type == "Replace") {
    st.type = T::kReplace;
    st.regex = read_pattern(r, p, field, st.pattern);
    if (!st.regex && st.pattern.empty()) r.fail(field + ".pattern", "empty pattern");
    // tokenizers panics replacing some empty matches (at the end of a text): refused, since its
    // ids are not defined there.
    if (st.regex && st.regex->can_match_empty())
      r.fail(field + ".pattern.Regex", "refused: the pattern can match the empty string");
    st.content = r.string(p, "content", "", field + ".content");
  } else if (type == "Precompiled") {
    st.type = T::kPrecompiled;
    const std::string f = field + ".precompiled_charsmap";
    auto it = p.find("precompiled_charsmap");
    if (it == p.end() || !it->is_string()) r.fail(f, "expected a base64 string");
    std::string blob, error;
    if (!base64_decode(it->get_ref<const std::string&>(), blob)) r.fail(f, "invalid base64");
    st.precompiled = Precompiled::parse(blob, error);
    if (!st.precompiled) r.fail(f, "not a sentencepiece charsmap: " + error);
  } else {
    r.fail(field, "unsupported normalizer type " + (type.empty() ? "(none)" : type));
  }
  steps.push_back(std::move(st));
}

void read_normalizer(const Reader& r, const Json& j, TokenizerConfig& c) {
  NormalizerConfig& n = c.normalizer;
  auto it = j.find("normalizer");
  if (it == j.end() || it->is_null()) {
    n.enabled = false;
    return;
  }
  if (!it->is_object()) r.fail("normalizer", "expected an object");
  if (r.string(*it, "type", "", "normalizer.type") == "BertNormalizer") {
    read_bert_normalizer(r, *it, n, "normalizer");
    return;
  }
  n.enabled = false;
  read_normalizer_steps(r, *it, "normalizer", c.normalizers);
}

// "cls": ["[CLS]", 101] in BertProcessing.
std::pair<std::string, std::int32_t> token_pair(const Reader& r, const Json& pp, const char* key) {
  std::string field = std::string("post_processor.") + key;
  auto it = pp.find(key);
  if (it == pp.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_string())
    r.fail(field, "expected [token, id]");
  return {(*it)[0].get<std::string>(), r.id((*it)[1], field)};
}

std::vector<TemplatePiece> bert_template(std::int32_t cls, std::int32_t sep, bool pair) {
  std::vector<TemplatePiece> t = {{false, 0, 0, {cls}}, {true, 0, 0, {}}, {false, 0, 0, {sep}}};
  if (pair) {
    t.push_back({true, 1, 1, {}});
    t.push_back({false, 0, 1, {sep}});
  }
  return t;
}

std::vector<TemplatePiece> read_template(const Reader& r, const Json& pp, const char* key) {
  std::string field = std::string("post_processor.") + key;
  auto it = pp.find(key);
  if (it == pp.end() || !it->is_array()) r.fail(field, "expected a list of pieces");
  const Json& specials = r.object(pp, "special_tokens", "post_processor.special_tokens");
  std::vector<TemplatePiece> out;
  for (const Json& piece : *it) {
    TemplatePiece t;
    if (piece.contains("Sequence")) {
      const Json& s = piece["Sequence"];
      std::string which = r.string(s, "id", "", field);
      if (which != "A" && which != "B") r.fail(field, "sequence id must be A or B");
      t.is_sequence = true;
      t.sequence = which == "A" ? 0 : 1;
      t.type_id = static_cast<std::int32_t>(r.integer(s, "type_id", 0, field));
    } else if (piece.contains("SpecialToken")) {
      const Json& s = piece["SpecialToken"];
      std::string name = r.string(s, "id", "", field);
      t.type_id = static_cast<std::int32_t>(r.integer(s, "type_id", 0, field));
      auto sp = specials.find(name);
      if (sp == specials.end() || !sp->is_object() || !sp->contains("ids") || !(*sp)["ids"].is_array())
        r.fail("post_processor.special_tokens", "no ids for '" + name + "'");
      for (const Json& v : (*sp)["ids"]) t.ids.push_back(r.id(v, "post_processor.special_tokens"));
    } else {
      r.fail(field, "expected Sequence or SpecialToken pieces");
    }
    out.push_back(std::move(t));
  }
  return out;
}

void read_post_processor(const Reader& r, const Json& j, TokenizerConfig& c) {
  auto it = j.find("post_processor");
  if (it == j.end() || it->is_null()) return;
  if (!it->is_object()) r.fail("post_processor", "expected an object");
  std::string type = r.string(*it, "type", "", "post_processor.type");
  c.has_post_processor = true;
  if (type == "TemplateProcessing") {
    c.single = read_template(r, *it, "single");
    c.pair = read_template(r, *it, "pair");
  } else if (type == "BertProcessing") {
    auto [cls_token, cls] = token_pair(r, *it, "cls");
    auto [sep_token, sep] = token_pair(r, *it, "sep");
    c.cls_token = cls_token;
    c.sep_token = sep_token;
    c.single = bert_template(cls, sep, false);
    c.pair = bert_template(cls, sep, true);
  } else if (type == "RobertaProcessing") {
    // <s> A </s> and <s> A </s> </s> B </s>, every type id 0; trim_offsets and add_prefix_space
    // change offsets only.
    auto [cls_token, cls] = token_pair(r, *it, "cls");
    auto [sep_token, sep] = token_pair(r, *it, "sep");
    c.cls_token = cls_token;
    c.sep_token = sep_token;
    c.single = {{false, 0, 0, {cls}}, {true, 0, 0, {}}, {false, 0, 0, {sep}}};
    c.pair = c.single;
    c.pair.insert(c.pair.end(), {{false, 0, 0, {sep}}, {true, 1, 0, {}}, {false, 0, 0, {sep}}});
  } else if (type == "ByteLevel") {
    c.has_post_processor = false;  // it trims offsets; the ids stay as they are
  } else {
    r.fail("post_processor", "unsupported post-processor type " + type);
  }
}

void read_added_tokens(const Reader& r, const Json& j, TokenizerConfig& c) {
  auto it = j.find("added_tokens");
  if (it == j.end() || it->is_null()) return;
  if (!it->is_array()) r.fail("added_tokens", "expected a list");
  for (const Json& t : *it) {
    if (!t.is_object()) r.fail("added_tokens", "expected objects");
    AddedToken a;
    a.content = r.string(t, "content", "", "added_tokens.content");
    if (!t.contains("id")) r.fail("added_tokens.id", "missing");
    a.id = r.id(t["id"], "added_tokens.id");
    a.normalized = r.boolean(t, "normalized", true, "added_tokens.normalized");
    a.single_word = r.boolean(t, "single_word", false, "added_tokens.single_word");
    a.lstrip = r.boolean(t, "lstrip", false, "added_tokens.lstrip");
    a.rstrip = r.boolean(t, "rstrip", false, "added_tokens.rstrip");
    if (!a.content.empty()) c.added_tokens.push_back(std::move(a));
  }
}

void read_truncation_padding(const Reader& r, const Json& j, TokenizerConfig& c) {
  if (auto it = j.find("truncation"); it != j.end() && !it->is_null()) {
    c.file_options.max_length = static_cast<std::size_t>(r.integer(*it, "max_length", 0, "truncation.max_length"));
    std::string s = r.string(*it, "strategy", "LongestFirst", "truncation.strategy");
    if (s == "LongestFirst") c.file_options.truncation = Truncation::kLongestFirst;
    else if (s == "OnlyFirst") c.file_options.truncation = Truncation::kOnlyFirst;
    else if (s == "OnlySecond") c.file_options.truncation = Truncation::kOnlySecond;
    else r.fail("truncation.strategy", "unknown strategy " + s);
  }
  if (auto it = j.find("padding"); it != j.end() && !it->is_null()) {
    c.pad_token = r.string(*it, "pad_token", c.pad_token, "padding.pad_token");
    c.pad_type_id = static_cast<std::int32_t>(r.integer(*it, "pad_type_id", 0, "padding.pad_type_id"));
    if (it->contains("pad_id")) c.pad_id = r.id((*it)["pad_id"], "padding.pad_id");
    const Json& s = (*it)["strategy"];
    if (s.is_string() && s.get<std::string>() == "BatchLongest") {
      c.file_options.padding = Padding::kLongest;
    } else if (s.is_object() && s.contains("Fixed")) {
      c.file_options.padding = Padding::kMaxLength;
      c.file_options.max_length = static_cast<std::size_t>(r.integer(s, "Fixed", 0, "padding.strategy.Fixed"));
    }
  }
}

// "model": the type names the component; its fields are read by the type's reader.
void read_model(const Reader& r, const Json& j, TokenizerJsonParser& parser, TokenizerConfig& c) {
  const Json& model = r.object(j, "model", "model");
  std::string type = r.string(model, "type", "", "model.type");
  // Old files carry no model type; WordPiece and BPE are recognisable by their fields.
  if (type.empty() && model.contains("continuing_subword_prefix") && model.contains("max_input_chars_per_word"))
    type = "WordPiece";
  if (type.empty() && model.contains("merges")) type = "BPE";
  if (!parser.saw_vocab && (type == "WordPiece" || type == "BPE"))
    r.object(model, "vocab", "model.vocab");  // fails: missing or not an object
  if (type == "WordPiece") {
    c.model_type = ModelType::kWordPiece;
    c.model.vocab = std::move(parser.vocab);
    c.model.unk_token = r.string(model, "unk_token", "[UNK]", "model.unk_token");
    c.model.continuing_subword_prefix = r.string(model, "continuing_subword_prefix", "##", "model.continuing_subword_prefix");
    std::int64_t max_chars = r.integer(model, "max_input_chars_per_word", 100, "model.max_input_chars_per_word");
    if (max_chars < 0) r.fail("model.max_input_chars_per_word", "must not be negative");
    c.model.max_input_chars_per_word = static_cast<std::size_t>(max_chars);
  } else if (type == "BPE") {
    c.model_type = ModelType::kBpe;
    BpeConfig& b = c.bpe;
    b.path = r.path();
    b.vocab = std::move(parser.vocab);
    // Dropout samples merges at random: refused rather than tokenized differently from run to run.
    if (auto d = model.find("dropout"); d != model.end() && !d->is_null())
      r.fail("model.dropout", "BPE dropout is not supported (must be null)");
    if (auto u = model.find("unk_token"); u != model.end() && !u->is_null())
      b.unk_token = r.string(model, "unk_token", "", "model.unk_token");
    b.continuing_subword_prefix = r.string(model, "continuing_subword_prefix", "", "model.continuing_subword_prefix");
    b.end_of_word_suffix = r.string(model, "end_of_word_suffix", "", "model.end_of_word_suffix");
    b.fuse_unk = r.boolean(model, "fuse_unk", false, "model.fuse_unk");
    b.byte_fallback = r.boolean(model, "byte_fallback", false, "model.byte_fallback");
    b.ignore_merges = r.boolean(model, "ignore_merges", false, "model.ignore_merges");
    auto m = model.find("merges");
    if (m == model.end() || !m->is_array()) r.fail("model.merges", "expected a list");
    b.merges.reserve(m->size());
    for (const Json& e : *m) {
      // Two formats: "a b" (split at its one space; "#version" lines skipped) or ["a", "b"].
      if (e.is_string()) {
        const std::string& line = e.get_ref<const std::string&>();
        if (line.rfind("#version", 0) == 0) continue;
        const std::size_t sp = line.find(' ');
        if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
          r.fail("model.merges", "merge " + std::to_string(b.merges.size() + 1) + ": expected \"a b\", got '" + line + "'");
        b.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        b.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        r.fail("model.merges", "merge " + std::to_string(b.merges.size() + 1) + ": expected \"a b\" or [a, b]");
      }
    }
  } else if (type == "Unigram") {
    c.model_type = ModelType::kUnigram;
    UnigramConfig& u = c.unigram;
    auto v = model.find("vocab");
    if (v == model.end() || !v->is_array()) r.fail("model.vocab", "expected a list of [token, score]");
    u.vocab.reserve(v->size());
    for (const Json& e : *v) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        r.fail("model.vocab", "entry " + std::to_string(u.vocab.size()) + ": expected [token, score]");
      u.vocab.emplace_back(e[0].get<std::string>(), e[1].get<double>());
    }
    if (auto k = model.find("unk_id"); k != model.end() && !k->is_null()) {
      const std::int32_t id = r.id(*k, "model.unk_id");
      if (static_cast<std::size_t>(id) >= u.vocab.size()) r.fail("model.unk_id", "out of the vocabulary");
      u.unk_id = id;
    }
    u.byte_fallback = r.boolean(model, "byte_fallback", false, "model.byte_fallback");
  } else {
    r.fail("model.type", "unsupported model type " + (type.empty() ? "(none)" : type));
  }
}

// Whether `s` (valid UTF-8) is exactly one character; sets `c` to it.
bool one_char(const std::string& s, char32_t& c) {
  if (s.empty()) return false;
  std::size_t i = 0;
  c = static_cast<unsigned char>(s[0]) < 0x80 ? static_cast<char32_t>(s[i++]) : unicode::decode_utf8(s, i);
  return i == s.size();
}

PreTokenizerConfig::Behavior read_behavior(const Reader& r, const Json& p, const std::string& field, bool required) {
  using B = PreTokenizerConfig::Behavior;
  if (required && !p.contains("behavior")) r.fail(field, "missing");
  const std::string b = r.string(p, "behavior", "Isolated", field);
  if (b == "Removed") return B::kRemoved;
  if (b == "Isolated") return B::kIsolated;
  if (b == "MergedWithPrevious") return B::kMergedWithPrevious;
  if (b == "MergedWithNext") return B::kMergedWithNext;
  if (b == "Contiguous") return B::kContiguous;
  r.fail(field, "unknown behavior " + b);
}

// One pre-tokenizer into `steps` (a Sequence adds its members in order: applying them one after
// the other to every piece is what HF's Sequence does).
void read_pre_tokenizer_step(const Reader& r, const Json& p, const std::string& field,
                             std::vector<PreTokenizerConfig>& steps) {
  if (!p.is_object()) r.fail(field, "expected an object");
  std::string type = r.string(p, "type", "", field + ".type");
  PreTokenizerConfig c;
  using T = PreTokenizerConfig::Type;
  if (type == "Sequence") {
    auto list = p.find("pretokenizers");
    if (list == p.end() || !list->is_array()) r.fail(field + ".pretokenizers", "expected a list");
    for (const Json& q : *list) read_pre_tokenizer_step(r, q, field + ".pretokenizers", steps);
    return;
  } else if (type == "Whitespace") {
    c.type = T::kWhitespace;
  } else if (type == "WhitespaceSplit") {
    c.type = T::kWhitespaceSplit;
  } else if (type == "Punctuation") {
    c.type = T::kPunctuation;
    c.behavior = read_behavior(r, p, field + ".behavior", false);
  } else if (type == "Digits") {
    c.type = T::kDigits;
    c.individual_digits = r.boolean(p, "individual_digits", false, field + ".individual_digits");
  } else if (type == "Split") {
    c.type = T::kSplit;
    std::string literal;
    c.regex = read_pattern(r, p, field, literal);
    if (!c.regex) c.regex = Regex::literal(literal);
    c.behavior = read_behavior(r, p, field + ".behavior", true);
    if (!p.contains("invert")) r.fail(field + ".invert", "missing");
    c.invert = r.boolean(p, "invert", false, field + ".invert");
  } else if (type == "CharDelimiterSplit") {
    c.type = T::kCharDelimiterSplit;
    if (!one_char(r.string(p, "delimiter", "", field + ".delimiter"), c.delimiter))
      r.fail(field + ".delimiter", "expected one character");
  } else if (type == "BertPreTokenizer") {
    c.type = PreTokenizerConfig::Type::kBert;
  } else if (type == "ByteLevel") {
    c.type = PreTokenizerConfig::Type::kByteLevel;
    c.add_prefix_space = r.boolean(p, "add_prefix_space", true, field + ".add_prefix_space");
    c.use_regex = r.boolean(p, "use_regex", true, field + ".use_regex");
    // trim_offsets changes offsets only, never ids.
  } else if (type == "Metaspace") {
    c.type = PreTokenizerConfig::Type::kMetaspace;
    c.replacement = r.string(p, "replacement", "\u2581", field + ".replacement");
    if (char32_t ch = 0; !one_char(c.replacement, ch)) r.fail(field + ".replacement", "expected one character");
    const std::string scheme = r.string(p, "prepend_scheme", "always", field + ".prepend_scheme");
    if (scheme == "always") c.prepend = PreTokenizerConfig::Prepend::kAlways;
    else if (scheme == "first") c.prepend = PreTokenizerConfig::Prepend::kFirst;
    else if (scheme == "never") c.prepend = PreTokenizerConfig::Prepend::kNever;
    else r.fail(field + ".prepend_scheme", "unknown scheme " + scheme);
    // Older files: add_prefix_space false means never (HF refuses it with another scheme).
    if (!r.boolean(p, "add_prefix_space", true, field + ".add_prefix_space")) {
      if (c.prepend != PreTokenizerConfig::Prepend::kNever && p.contains("prepend_scheme"))
        r.fail(field + ".add_prefix_space", "add_prefix_space does not match prepend_scheme");
      c.prepend = PreTokenizerConfig::Prepend::kNever;
    }
    c.split = r.boolean(p, "split", true, field + ".split");
  } else {
    r.fail(field, "unsupported pre-tokenizer type " + (type.empty() ? "(none)" : type));
  }
  steps.push_back(std::move(c));
}

void read_pre_tokenizer(const Reader& r, const Json& j, TokenizerConfig& c) {
  auto it = j.find("pre_tokenizer");
  if (it == j.end() || it->is_null()) return;
  read_pre_tokenizer_step(r, *it, "pre_tokenizer", c.pre_tokenizers);
}

TokenizerConfig read_tokenizer_json(const std::string& path) {
  Reader r(path);
  TokenizerJsonParser parser;
  {
    std::string text = read_file(path);
    if (!Json::sax_parse(text, &parser)) throw Error(ErrorKind::kConfig, path + ": invalid JSON: " + parser.error);
  }
  const Json& j = parser.root;
  if (!j.is_object()) r.fail("", "expected a JSON object");
  TokenizerConfig c;
  read_model(r, j, parser, c);
  read_normalizer(r, j, c);
  read_pre_tokenizer(r, j, c);
  read_post_processor(r, j, c);
  read_added_tokens(r, j, c);
  read_truncation_padding(r, j, c);
  c.sha256 = sha256_file(path);
  return c;
}

// Rust str::trim_end: trailing Unicode whitespace.
std::string_view trim_end(std::string_view s) {
  const std::uint8_t* flags = unicode::flag_table();
  while (!s.empty()) {
    std::size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    std::size_t i = start;
    char32_t c = static_cast<unsigned char>(s[i]) < 0x80 ? static_cast<unsigned char>(s[i]) : unicode::decode_utf8(s, i);
    if (!(flags[c] & unicode::kWhitespace)) break;
    s.remove_suffix(s.size() - start);
  }
  return s;
}

// A special-token name from tokenizer_config.json: "[CLS]" or {"content": "[CLS]", ...}.
std::string config_token(const Reader& r, const Json& cfg, const char* key, const char* def) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return def;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return r.string(*it, "content", def, key);
  r.fail(key, "expected a token string");
}

// vocab.txt as HF WordPiece::read_file reads it (one token per line, line number = id, trailing
// whitespace trimmed), set up like tokenizers' BertWordPieceTokenizer / transformers' BertTokenizer.
TokenizerConfig read_vocab_txt(const std::string& path) {
  TokenizerConfig c;
  std::string text = read_file(path);
  Reader r(path);
  std::int32_t index = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::size_t end = nl == std::string::npos ? text.size() : nl;
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view token;
    try {
      token = trim_end(line);
    } catch (const Error&) {
      throw Error(ErrorKind::kConfig, Where{path, index + 1, ""}, "invalid UTF-8");
    }
    c.model.vocab.emplace_back(std::string(token), index++);
    pos = end + 1;
  }
  if (c.model.vocab.empty()) r.fail("", "empty vocabulary");

  std::string config_path = (fs::path(path).parent_path() / "tokenizer_config.json").string();
  Json cfg = Json::object();
  std::string config_sha;
  if (fs::exists(config_path)) {
    cfg = parse_json(config_path);
    if (!cfg.is_object()) Reader(config_path).fail("", "expected a JSON object");
    config_sha = sha256_file(config_path);
  }
  Reader cr(config_path);
  c.normalizer.lowercase = cr.boolean(cfg, "do_lower_case", true, "do_lower_case");
  c.normalizer.strip_accents = cr.boolean(cfg, "strip_accents", c.normalizer.lowercase, "strip_accents");
  c.normalizer.handle_chinese_chars = cr.boolean(cfg, "tokenize_chinese_chars", true, "tokenize_chinese_chars");
  c.model.unk_token = config_token(cr, cfg, "unk_token", "[UNK]");
  c.sep_token = config_token(cr, cfg, "sep_token", "[SEP]");
  c.cls_token = config_token(cr, cfg, "cls_token", "[CLS]");
  c.pad_token = config_token(cr, cfg, "pad_token", "[PAD]");
  std::string mask = config_token(cr, cfg, "mask_token", "[MASK]");

  auto find = [&](const std::string& token) {
    std::int32_t id = -1;
    for (const auto& [t, i] : c.model.vocab)
      if (t == token) id = i;  // the last duplicate wins, as in the vocabulary map
    return id;
  };
  // The special tokens present in the vocabulary split the raw text (BertWordPieceTokenizer).
  for (const std::string& t : {c.model.unk_token, c.sep_token, c.cls_token, c.pad_token, mask})
    if (std::int32_t id = find(t); id >= 0) c.added_tokens.push_back(AddedToken{t, id, false});
  std::int32_t cls = find(c.cls_token), sep = find(c.sep_token);
  if (cls < 0) r.fail("", "cls token '" + c.cls_token + "' is not in the vocabulary");
  if (sep < 0) r.fail("", "sep token '" + c.sep_token + "' is not in the vocabulary");
  c.pre_tokenizers = {PreTokenizerConfig{}};
  c.has_post_processor = true;
  c.single = bert_template(cls, sep, false);
  c.pair = bert_template(cls, sep, true);
  c.file_options.max_length = 0;
  std::string vocab_sha = sha256_file(path);
  c.sha256 = config_sha.empty() ? vocab_sha : sha256_hex(vocab_sha + "\n" + config_sha);
  return c;
}

}  // namespace

TokenizerConfig load_config(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw Error(ErrorKind::kNoInput, "tokenizer '" + path + "': no such file or directory");
  if (fs::is_directory(st)) {
    fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json")) return read_tokenizer_json((dir / "tokenizer.json").string());
    if (fs::exists(dir / "vocab.txt")) return read_vocab_txt((dir / "vocab.txt").string());
    throw Error(ErrorKind::kNoInput, "tokenizer '" + path + "': no tokenizer.json or vocab.txt in the directory");
  }
  if (fs::path(path).extension() == ".json") return read_tokenizer_json(path);
  return read_vocab_txt(path);
}

}  // namespace hf::tokenizer
