// tokenizer: a hand-made vocabulary whose answers follow from the HF pipeline by hand (normalize,
// split on whitespace and punctuation, greedy longest-match WordPiece, [CLS] A [SEP] B [SEP]),
// then the error cases. The bit-for-bit comparison with HF tokenizers is the golden test.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "support/temp_dir.h"
#include "tokenizer/grapheme.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"

namespace {

using hf::tokenizer::EncodeOptions;
using hf::tokenizer::Padding;
using hf::tokenizer::Tokenizer;
using hf::tokenizer::Truncation;
using Ids = std::vector<std::int32_t>;

// Line number (from 0) = id.
const char* const kVocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "un",  "##aff", "##able",
    ",",     "!",     "cafe",  "café",  "中",     "文",    "a",     "##a", "straße", "i",
    "##\u0307", ".", "Hello", "World", "[", "]", "mask", "##s",
};

void write(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
}

std::string vocab_txt() {
  std::string s;
  for (const char* t : kVocab) s += std::string(t) + "\n";
  return s;
}

// A model directory holding vocab.txt and, when given, tokenizer_config.json.
std::string model_dir(const hf::test::TempDir& tmp, const std::string& name, const std::string& config = "") {
  std::string dir = tmp.file(name);
  std::filesystem::create_directories(dir);
  write(dir + "/vocab.txt", vocab_txt());
  if (!config.empty()) write(dir + "/tokenizer_config.json", config);
  return dir;
}

// The same vocabulary as tokenizer.json (TemplateProcessing, special tokens as added tokens).
std::string tokenizer_json(const std::string& model_type = "WordPiece", const std::string& normalizer =
                               R"({"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                                   "strip_accents": null, "lowercase": true})",
                           const std::string& pre_tokenizer = R"({"type": "BertPreTokenizer"})",
                           const std::string& added_extra = "") {
  std::string vocab;
  for (std::size_t i = 0; i < std::size(kVocab); ++i)
    vocab += (i ? ", \"" : "\"") + std::string(kVocab[i]) + "\": " + std::to_string(i);
  std::string added;
  for (int id : {0, 1, 2, 3, 4})
    added += std::string(id ? ", " : "") + R"({"id": )" + std::to_string(id) + R"(, "content": ")" + kVocab[id] +
             R"(", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})";
  return R"({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [)" + added + added_extra +
         R"(], "normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre_tokenizer + R"(,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
             {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                       "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
  "decoder": null,
  "model": {"type": ")" + model_type + R"(", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": {)" + vocab + "}}}";
}

// A small BPE: vocabulary a b c ab bc abc </s> <s> <pad>, the given merges and pre-tokenizer.
std::string bpe_json(const std::string& merges, const std::string& model_extra = "",
                     const std::string& post_processor = "null", const std::string& pre_tokenizer = "null") {
  return R"({"version": "1.0", "truncation": null, "added_tokens": [], "normalizer": null,
    "padding": {"strategy": "BatchLongest", "pad_id": 8, "pad_type_id": 0, "pad_token": "<pad>"},
    "pre_tokenizer": )" + pre_tokenizer + R"(, "post_processor": )" + post_processor + R"(, "decoder": null,
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5, "</s>": 6, "<s>": 7,
              "<pad>": 8}, "merges": [)" + merges + "]" + (model_extra.empty() ? "" : ", " + model_extra) + "}}";
}

// A small Unigram: <unk> ▁ a b ab ▁ab c, the given normalizer and pre-tokenizer.
std::string unigram_json(const std::string& normalizer = "null",
                         const std::string& pre_tokenizer = R"({"type": "Metaspace", "replacement": "\u2581",
                                                                "prepend_scheme": "always", "split": true})") {
  return R"({"version": "1.0", "added_tokens": [], "post_processor": null, "normalizer": )" + normalizer +
         R"(, "pre_tokenizer": )" + pre_tokenizer + R"(, "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false,
         "vocab": [["<unk>", 0.0], ["\u2581", -2.0], ["a", -1.0], ["b", -1.0], ["ab", -1.5], ["\u2581ab", -1.0],
                   ["c", -3.0]]}})";
}

Ids repeat_a(std::size_t n) {
  Ids ids = {2, 16};
  ids.insert(ids.end(), n - 1, 17);
  ids.push_back(3);
  return ids;
}

}  // namespace

TEST_CASE("tokenizer: encode, per normalizer setting") {
  hf::test::TempDir tmp;
  const std::string uncased = model_dir(tmp, "uncased");
  const std::string cased = model_dir(tmp, "cased", R"({"do_lower_case": false})");
  const std::string lower_keep_accents = model_dir(tmp, "lower", R"({"do_lower_case": true, "strip_accents": false})");
  const std::string no_cjk = model_dir(tmp, "nocjk", R"({"tokenize_chinese_chars": false})");
  const std::string json = tmp.file("tokenizer.json");
  write(json, tokenizer_json());

  struct Case {
    const std::string* tokenizer;
    std::string text;
    Ids want;
  };
  const Case cases[] = {
      {&uncased, "hello world", {2, 5, 6, 3}},
      {&uncased, "Hello, WORLD!", {2, 5, 10, 6, 11, 3}},
      {&uncased, "unaffable", {2, 7, 8, 9, 3}},
      {&uncased, "unaffablex", {2, 1, 3}},  // no full split: the whole word is [UNK]
      {&uncased, "hellos", {2, 5, 27, 3}},
      {&uncased, "Café", {2, 12, 3}},  // NFD, drop the accent, lowercase
      {&uncased, "cafe\u0301", {2, 12, 3}},
      {&uncased, "Straße", {2, 18, 3}},
      {&uncased, "\u0130", {2, 19, 3}},  // İ = I + U+0307; the mark goes before lowercasing
      {&uncased, "中文", {2, 14, 15, 3}},
      {&uncased, "hello\tworld\u00a0hello\u3000world\n", {2, 5, 6, 5, 6, 3}},
      {&uncased, std::string("hel\0lo wor\u200bld", 16), {2, 5, 6, 3}},  // NUL and U+200B dropped
      {&uncased, "hello [MASK] world", {2, 5, 4, 6, 3}},  // special tokens split before normalizing
      {&uncased, "[MASK][MASK]", {2, 4, 4, 3}},
      {&uncased, "[mask]", {2, 24, 26, 25, 3}},  // not the special token: punctuation and a word
      {&uncased, "", {2, 3}},
      {&uncased, std::string(100, 'a'), repeat_a(100)},
      {&uncased, std::string(101, 'a'), {2, 1, 3}},  // over max_input_chars_per_word
      {&cased, "Hello World", {2, 22, 23, 3}},
      {&cased, "hello café", {2, 5, 13, 3}},
      {&cased, "Café", {2, 1, 3}},
      {&lower_keep_accents, "Café", {2, 13, 3}},
      {&lower_keep_accents, "\u0130", {2, 19, 20, 3}},  // to_lowercase(İ) = "i\u0307"
      {&no_cjk, "中文", {2, 1, 3}},
      {&json, "Hello, WORLD!", {2, 5, 10, 6, 11, 3}},
      {&json, "Café [MASK] 中文", {2, 12, 4, 14, 15, 3}},
  };
  for (const auto& c : cases) {
    CAPTURE(*c.tokenizer);
    CAPTURE(c.text);
    Tokenizer t = Tokenizer::load(*c.tokenizer);
    auto e = t.encode(c.text);
    CHECK(e.ids == c.want);
    CHECK(e.type_ids == Ids(c.want.size(), 0));
    CHECK(e.length == c.want.size());
    CHECK_FALSE(e.truncated);
  }
}

TEST_CASE("tokenizer: pairs, truncation strategies and padding") {
  hf::test::TempDir tmp;
  Tokenizer t = Tokenizer::load(model_dir(tmp, "m"));
  auto opts = [](std::size_t max_length, Truncation s, Padding p = Padding::kNone) {
    EncodeOptions o;
    o.max_length = max_length;
    o.truncation = s;
    o.padding = p;
    return o;
  };
  struct Case {
    std::string a;
    const char* b;  // nullptr: single sequence
    EncodeOptions options;
    Ids ids, types;
    bool truncated;
  };
  const Case cases[] = {
      {"hello", "world", {}, {2, 5, 3, 6, 3}, {0, 0, 0, 1, 1}, false},
      {"hello world hello world", nullptr, opts(4, Truncation::kLongestFirst), {2, 5, 6, 3}, {0, 0, 0, 0}, true},
      // 4 + 2 tokens into 7 - 3 = 4: the shorter keeps its 2, the longer gets the rest.
      {"hello world hello world", "world world", opts(7, Truncation::kLongestFirst),
       {2, 5, 6, 3, 6, 6, 3}, {0, 0, 0, 0, 1, 1, 1}, true},
      // 4 + 4 into 5: both cut, the first gets 5 / 2 = 2, the second the odd one more.
      {"hello world hello world", "world world world world", opts(8, Truncation::kLongestFirst),
       {2, 5, 6, 3, 6, 6, 6, 3}, {0, 0, 0, 0, 1, 1, 1, 1}, true},
      {"hello world hello world", "world world", opts(6, Truncation::kOnlyFirst),
       {2, 5, 3, 6, 6, 3}, {0, 0, 0, 1, 1, 1}, true},
      {"hello world", "world world world world", opts(6, Truncation::kOnlySecond),
       {2, 5, 6, 3, 6, 3}, {0, 0, 0, 0, 1, 1}, true},
      // max_length below the special tokens: HF's unsigned subtraction wraps, nothing is cut.
      {"hello world", nullptr, opts(1, Truncation::kLongestFirst), {2, 5, 6, 3}, {0, 0, 0, 0}, false},
      {"hello", nullptr, opts(6, Truncation::kLongestFirst, Padding::kMaxLength), {2, 5, 3, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.a);
    auto e = c.b ? t.encode_pair(c.a, c.b, c.options) : t.encode(c.a, c.options);
    CHECK(e.ids == c.ids);
    CHECK(e.type_ids == c.types);
    CHECK(e.truncated == c.truncated);
  }
  CHECK(t.encode("hello", opts(6, Truncation::kLongestFirst, Padding::kMaxLength)).length == 3);

  // HF refuses these.
  CHECK_THROWS_AS(t.encode_pair("hello", "world world world world", opts(5, Truncation::kOnlyFirst)), hf::Error);
  CHECK_THROWS_AS(t.encode("hello world hello world", opts(4, Truncation::kOnlySecond)), hf::Error);
  CHECK(t.encode("hello", opts(4, Truncation::kOnlySecond)).ids == Ids{2, 5, 3});  // nothing to cut: fine
}

TEST_CASE("tokenizer: batches equal one-by-one encoding, padded to the longest, on many threads") {
  hf::test::TempDir tmp;
  Tokenizer t = Tokenizer::load(model_dir(tmp, "m"));
  std::vector<std::string> texts;
  for (int i = 0; i < 1000; ++i) texts.push_back(std::string(i % 7, 'a') + " hello [MASK] world" + std::string(i % 3, '!'));
  std::vector<std::string_view> views(texts.begin(), texts.end());
  hf::ThreadPool pool(4);
  EncodeOptions o;
  auto batch = t.encode_batch(views, o, &pool);
  REQUIRE(batch.size() == texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) CHECK(batch[i].ids == t.encode(texts[i]).ids);
  auto pairs = t.encode_batch(views, views, o, &pool);
  for (std::size_t i = 0; i < texts.size(); ++i) CHECK(pairs[i].ids == t.encode_pair(texts[i], texts[i]).ids);

  o.padding = Padding::kLongest;
  std::vector<std::string_view> two = {"hello", "hello world world"};
  auto padded = t.encode_batch(two, o);
  CHECK(padded[0].ids == Ids{2, 5, 3, 0, 0});
  CHECK(padded[0].length == 3);
  CHECK(padded[1].ids == Ids{2, 5, 6, 6, 3});
}

TEST_CASE("tokenizer: vocabulary queries and metadata") {
  hf::test::TempDir tmp;
  const std::string dir = model_dir(tmp, "m");
  Tokenizer t = Tokenizer::load(dir);
  CHECK(t.vocab_size() == std::size(kVocab));
  CHECK(t.token_to_id("hello") == 5);
  CHECK(t.token_to_id("nope") == -1);
  CHECK(t.id_to_token(9) == "##able");
  CHECK(t.id_to_token(9999).empty());
  CHECK(t.pad_id() == 0);
  CHECK(t.unk_id() == 1);
  CHECK(t.cls_id() == 2);
  CHECK(t.sep_id() == 3);
  CHECK(t.num_special_tokens(false) == 2);
  CHECK(t.num_special_tokens(true) == 3);
  CHECK(t.sha256() == hf::sha256_file(dir + "/vocab.txt"));
  // A copy shares the loaded tokenizer.
  Tokenizer copy = t;
  CHECK(copy.encode("hello").ids == Ids{2, 5, 3});

  write(tmp.file("t.json"), tokenizer_json());
  Tokenizer j = Tokenizer::load(tmp.file("t.json"));
  CHECK(j.sha256() == hf::sha256_file(tmp.file("t.json")));
  CHECK(j.file_options().max_length == 0);
}

TEST_CASE("tokenizer: errors") {
  hf::test::TempDir tmp;
  struct Case {
    std::string name;
    std::string file;      // written to tmp/<name>/<file>
    std::string content;
    hf::ErrorKind kind;
    std::string fragment;
  };
  const Case cases[] = {
      {"bpe", "tokenizer.json", tokenizer_json("BPE"), hf::ErrorKind::kConfig, "model.merges"},
      {"unigram", "tokenizer.json", tokenizer_json("Unigram"), hf::ErrorKind::kConfig, "expected a list of [token, score]"},
      {"wordlevel", "tokenizer.json", tokenizer_json("WordLevel"), hf::ErrorKind::kConfig, "unsupported model type WordLevel"},
      {"bpe_dropout", "tokenizer.json", bpe_json(R"("a b")", R"("dropout": 0.1)"), hf::ErrorKind::kConfig, "dropout"},
      {"bpe_merge_oov", "tokenizer.json", bpe_json(R"("a x")"), hf::ErrorKind::kConfig, "token 'x' is not in the vocabulary"},
      {"bpe_merge_bad", "tokenizer.json", bpe_json(R"("a b c")"), hf::ErrorKind::kConfig, "model.merges"},
      {"bpe_merged_oov", "tokenizer.json", bpe_json(R"("c a")"), hf::ErrorKind::kConfig, "merged token 'ca'"},
      {"roberta_pp", "tokenizer.json", bpe_json(R"("a b")", "", R"({"type": "RobertaProcessing", "sep": ["</s>"]})"),
       hf::ErrorKind::kConfig, "expected [token, id]"},
      {"unknown_pp", "tokenizer.json", bpe_json(R"("a b")", "", R"({"type": "Sequence", "processors": []})"),
       hf::ErrorKind::kConfig, "unsupported post-processor type Sequence"},
      {"unknown_pre_in_seq", "tokenizer.json",
       bpe_json(R"("a b")", "", "null",
                R"({"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "UnicodeScripts"}]})"),
       hf::ErrorKind::kConfig, "unsupported pre-tokenizer type UnicodeScripts"},
      {"byte_level_normalizer", "tokenizer.json", tokenizer_json("WordPiece", R"({"type": "ByteLevel"})"),
       hf::ErrorKind::kConfig, "unsupported normalizer type ByteLevel"},
      {"seq", "tokenizer.json",
       tokenizer_json("WordPiece", R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Nmt"}]})"),
       hf::ErrorKind::kConfig, "unsupported normalizer type Nmt"},
      // HF panics on all of these charsmaps: empty, not base64, a trie size past the end, an empty
      // trie, a trie that indexes past its array.
      {"precompiled_empty", "tokenizer.json", unigram_json(R"({"type": "Precompiled", "precompiled_charsmap": ""})"),
       hf::ErrorKind::kConfig, R"(field "normalizer.precompiled_charsmap": not a sentencepiece charsmap: shorter than)"},
      {"precompiled_base64", "tokenizer.json",
       unigram_json(R"({"type": "Precompiled", "precompiled_charsmap": "!!!!"})"), hf::ErrorKind::kConfig,
       R"("normalizer.precompiled_charsmap": invalid base64)"},
      {"precompiled_size", "tokenizer.json",
       unigram_json(R"({"type": "Precompiled", "precompiled_charsmap": "BAAAAP8="})"), hf::ErrorKind::kConfig,
       "longer than the 1 bytes that follow"},
      {"precompiled_no_trie", "tokenizer.json",
       unigram_json(R"({"type": "Sequence", "normalizers": [{"type": "Precompiled", "precompiled_charsmap": "AQAAAA=="}]})"),
       hf::ErrorKind::kConfig, R"("normalizer.normalizers.precompiled_charsmap": not a sentencepiece charsmap: its trie is empty)"},
      {"precompiled_oob", "tokenizer.json",
       unigram_json(R"({"type": "Precompiled", "precompiled_charsmap": "CAAAAAAAAAAAAAAA"})"), hf::ErrorKind::kConfig,
       "its trie indexes unit 2 of 2"},
      {"replace_regex", "tokenizer.json",
       unigram_json(R"({"type": "Replace", "pattern": {"Regex": "[0-9a-f]\\h"}, "content": "b"})"),
       hf::ErrorKind::kConfig, R"("normalizer.pattern.Regex": refused: \h is a hex digit class in Oniguruma)"},
      {"replace_regex_case", "tokenizer.json",
       unigram_json(R"j({"type": "Replace", "pattern": {"Regex": "(?i:ss)"}, "content": "b"})j"),
       hf::ErrorKind::kConfig, "(?i): Oniguruma folds case"},
      {"replace_regex_word", "tokenizer.json",
       unigram_json(R"({"type": "Replace", "pattern": {"Regex": "\\w+"}, "content": "b"})"),
       hf::ErrorKind::kConfig, "word characters"},
      {"replace_regex_empty", "tokenizer.json",
       unigram_json(R"({"type": "Replace", "pattern": {"Regex": "a*"}, "content": "b"})"),
       hf::ErrorKind::kConfig, "can match the empty string"},
      {"replace_regex_property", "tokenizer.json",
       unigram_json(R"({"type": "Replace", "pattern": {"Regex": "\\p{P}"}, "content": "b"})"),
       hf::ErrorKind::kConfig, "Unicode properties"},
      {"split_regex_nonspace_in_class", "tokenizer.json",
       unigram_json("null", R"({"type": "Split", "pattern": {"Regex": "[^\\S\n]"}, "behavior": "Removed",
                                "invert": false})"),
       hf::ErrorKind::kConfig, R"("pre_tokenizer.pattern.Regex": refused: \S inside a character class)"},
      {"split_behavior", "tokenizer.json",
       unigram_json("null", R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways", "invert": false})"),
       hf::ErrorKind::kConfig, "unknown behavior Sideways"},
      {"replace_regex_syntax", "tokenizer.json",
       unigram_json(R"({"type": "Replace", "pattern": {"Regex": "(a"}, "content": "b"})"),
       hf::ErrorKind::kConfig, R"("normalizer.pattern.Regex": at offset 2: missing closing parenthesis)"},
      {"metaspace_scheme", "tokenizer.json",
       unigram_json("null", R"({"type": "Metaspace", "replacement": "_", "prepend_scheme": "sometimes"})"),
       hf::ErrorKind::kConfig, "unknown scheme sometimes"},
      {"scripts", "tokenizer.json", tokenizer_json("WordPiece", "null", R"({"type": "UnicodeScripts"})"),
       hf::ErrorKind::kConfig, "unsupported pre-tokenizer type UnicodeScripts"},
      {"badjson", "tokenizer.json", "{\"model\": ", hf::ErrorKind::kConfig, "invalid JSON"},
      {"notobject", "tokenizer.json", "[1, 2]", hf::ErrorKind::kConfig, "expected a JSON object"},
      {"nounk", "vocab.txt", "[CLS]\n[SEP]\nhello\n", hf::ErrorKind::kConfig, "unk token '[UNK]' is missing"},
      {"nocls", "vocab.txt", "[UNK]\n[SEP]\nhello\n", hf::ErrorKind::kConfig, "cls token '[CLS]'"},
      {"empty", "vocab.txt", "", hf::ErrorKind::kConfig, "empty vocabulary"},
      {"badconfig", "tokenizer_config.json", "{oops", hf::ErrorKind::kConfig, "invalid JSON"},
      {"nothing", "README.md", "no tokenizer here", hf::ErrorKind::kNoInput, "no tokenizer.json or vocab.txt"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string dir = tmp.file(c.name);
    std::filesystem::create_directories(dir);
    if (c.file == "tokenizer_config.json") write(dir + "/vocab.txt", vocab_txt());
    write(dir + "/" + c.file, c.content);
    try {
      Tokenizer::load(dir);
      FAIL("loaded");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == c.kind);
      CHECK(std::string(e.what()).find(c.fragment) != std::string::npos);
    }
  }
  CHECK_THROWS_AS(Tokenizer::load(tmp.file("missing")), hf::Error);

  Tokenizer t = Tokenizer::load(model_dir(tmp, "ok"));
  for (std::string bad : {"\xff", "ab\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"}) {
    CAPTURE(bad);
    try {
      t.encode(bad);
      FAIL("encoded invalid UTF-8");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kDataErr);
      CHECK(std::string(e.what()).find("invalid UTF-8") != std::string::npos);
    }
  }
}

TEST_CASE("tokenizer: BPE merges by rank, in both formats, with RoBERTa's special tokens and padding") {
  hf::test::TempDir tmp;
  auto load = [&](const std::string& name, const std::string& json) {
    write(tmp.file(name), json);
    return Tokenizer::load(tmp.file(name));
  };
  // "b c" ranks before "a b": abc -> a bc (and "a bc" is no merge); the other order gives ab c -> abc.
  CHECK(load("1.json", bpe_json(R"("b c", "a b", "ab c")")).encode("abc").ids == Ids{0, 4});
  CHECK(load("2.json", bpe_json(R"("a b", "b c", "ab c")")).encode("abc").ids == Ids{5});
  CHECK(load("3.json", bpe_json(R"(["a", "b"], ["b", "c"], ["ab", "c"])")).encode("abc").ids == Ids{5});
  // Equal ranks go left first: "abab" -> ab ab; no pre-tokenizer, so the space stays in the word and,
  // without unk_token, disappears.
  CHECK(load("4.json", bpe_json(R"("a b")")).encode("abab c").ids == Ids{3, 3, 2});
  // ignore_merges takes a whole word found in the vocabulary as it is.
  CHECK(load("5.json", bpe_json(R"("b c")", R"("ignore_merges": true)")).encode("abc").ids == Ids{5});
  CHECK(load("6.json", bpe_json(R"("b c")", R"("ignore_merges": true)")).encode("cab").ids == Ids{2, 0, 1});

  Tokenizer r = load("r.json", bpe_json(R"("a b", "ab c")", "",
                                        R"({"type": "RobertaProcessing", "sep": ["</s>", 6], "cls": ["<s>", 7],
                                            "trim_offsets": true, "add_prefix_space": true})"));
  CHECK(r.encode("abc").ids == Ids{7, 5, 6});
  hf::tokenizer::Encoding p = r.encode_pair("abc", "b");
  CHECK(p.ids == Ids{7, 5, 6, 6, 1, 6});
  CHECK(p.type_ids == Ids{0, 0, 0, 0, 0, 0});  // RoBERTa: every type id 0
  CHECK(r.num_special_tokens(false) == 2);
  CHECK(r.num_special_tokens(true) == 4);
  CHECK(r.pad_id() == 8);
  EncodeOptions o;
  o.padding = Padding::kMaxLength;
  o.max_length = 5;
  CHECK(r.encode("c").ids == Ids{7, 2, 6});
  hf::tokenizer::Encoding padded = r.encode("c", o);
  CHECK(padded.ids == Ids{7, 2, 6, 8, 8});
  CHECK(padded.length == 3);
  o.max_length = 4;
  o.padding = Padding::kNone;
  CHECK(r.encode_pair("abc", "ab c", o).ids == Ids{7, 6, 6, 6});  // 4 = specials only: both emptied
  CHECK(r.vocab_size() == 9);
  CHECK(r.token_to_id("abc") == 5);
  CHECK(r.id_to_token(4) == "bc");
}

TEST_CASE("tokenizer: byte-level BPE maps bytes to GPT-2's characters and splits like its regex") {
  hf::test::TempDir tmp;
  // Vocabulary: the characters for ' ' (U+0120 'Ġ'), 'a', 'b', "'", 's', and merges Ġ+a, a+b, '+s.
  std::string json = R"({"version": "1.0", "added_tokens": [], "normalizer": null, "post_processor": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "vocab": {"Ġ": 0, "a": 1, "b": 2, "'": 3, "s": 4, "Ġa": 5, "ab": 6,
                                        "'s": 7, "ĠĠ": 8, "Ċ": 9},
              "merges": ["Ġ a", "a b", "' s", "Ġ Ġ"]}})";
  write(tmp.file("bl.json"), json);
  Tokenizer t = Tokenizer::load(tmp.file("bl.json"));
  // " ab" -> Ġa b (Ġ+a ranks first); "'s" is a word of its own; "  ab": the run keeps one space
  // for the word after it, so [Ġ] [Ġa b].
  CHECK(t.encode("ab").ids == Ids{5, 2});
  CHECK(t.encode("ab's").ids == Ids{5, 2, 7});
  CHECK(t.encode("a  ab").ids == Ids{5, 0, 5, 2});
  CHECK(t.encode("a\n").ids == Ids{5, 9});
  CHECK(t.encode("a   ").ids == Ids{5, 8, 0});  // trailing run: one word, merged Ġ+Ġ then Ġ
}

TEST_CASE("tokenizer: Unigram picks the best-scoring split, fuses unknown characters, behind Metaspace and normalizers") {
  hf::test::TempDir tmp;
  auto load = [&](const std::string& name, const std::string& json) {
    write(tmp.file(name), json);
    return Tokenizer::load(tmp.file(name));
  };
  Tokenizer t = load("u.json", unigram_json());
  CHECK(t.encode("ab").ids == Ids{5});         // ▁ab (-1) beats ▁ + ab (-3.5) and ▁ + a + b (-4)
  CHECK(t.encode("ab ab").ids == Ids{5, 5});   // split: ▁ab ▁ab
  CHECK(t.encode("xab").ids == Ids{1, 0, 4});  // ▁, x as unk (-3 - 10), ab
  CHECK(t.encode("xyab").ids == Ids{1, 0, 4}); // adjacent unknowns fuse into one unk
  CHECK(t.encode("").ids.empty());
  CHECK(t.vocab_size() == 7);
  CHECK(t.unk_id() == 0);
  Tokenizer never = load("n.json", unigram_json("null", R"({"type": "Metaspace", "replacement": "\u2581",
                                                             "prepend_scheme": "never", "split": false})"));
  CHECK(never.encode("ab ab").ids == Ids{4, 5});  // ab▁ab, one word
  Tokenizer nfkc = load("k.json", unigram_json(R"({"type": "Sequence", "normalizers": [{"type": "NFKC"},
                                                   {"type": "Lowercase"}, {"type": "Strip", "strip_left": true,
                                                   "strip_right": true}]})"));
  CHECK(nfkc.encode("  \xef\xbc\xa1" "B  ").ids == Ids{5});  // fullwidth A, B -> ab
}

TEST_CASE("tokenizer: regex matches as onig's find_iter yields them, grapheme clusters as UAX 29 cuts them") {
  using hf::tokenizer::Regex;
  std::string error;
  auto matches = [&](const char* pattern, std::string_view text) {
    auto re = Regex::compile(pattern, error);
    REQUIRE(re);
    std::vector<std::pair<std::size_t, std::size_t>> out;
    re->for_each_match(text, [&](std::size_t s, std::size_t e) { out.emplace_back(s, e); });
    return out;
  };
  using M = std::vector<std::pair<std::size_t, std::size_t>>;
  // An empty match right where the last match ended is skipped; one elsewhere is kept.
  CHECK(matches("x*", "xab") == M{{0, 1}, {2, 2}, {3, 3}});
  CHECK(matches("x*", "ab") == M{{0, 0}, {1, 1}, {2, 2}});
  CHECK(matches("^a", "a\na") == M{{0, 1}, {2, 3}});  // Ruby syntax: ^ starts every line
  CHECK(matches("\xc3\xa9+", "\xc3\xa9\xc3\xa9x") == M{{0, 4}});
  CHECK_FALSE(Regex::compile("\\h", error));
  CHECK(error.find("hex digit") != std::string::npos);
  CHECK(Regex::compile("[:;]", error));  // a class holding ':' is no POSIX class
  CHECK_FALSE(Regex::compile("[[:alpha:]]", error));
  M literal;
  Regex::literal("a.")->for_each_match("ab a.", [&](std::size_t s, std::size_t e) { literal.emplace_back(s, e); });
  CHECK(literal == M{{3, 5}});  // the dot is no wildcard

  namespace g = hf::tokenizer::grapheme;
  const std::uint8_t* props = g::property_table();
  CHECK(g::cluster_end(props, "e\xcc\x81x", 0) == 3);                   // e + U+0301
  CHECK(g::cluster_end(props, "\r\nx", 0) == 2);                         // CR LF
  CHECK(g::cluster_end(props, "\xf0\x9f\x87\xba\xf0\x9f\x87\xb8\xf0\x9f\x87\xab", 0) == 8);  // RI RI | RI
  CHECK(g::cluster_end(props, "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", 0) == 9);  // Hangul L V T
  CHECK(g::cluster_end(props, "a\xe2\x80\x8d\xc2\xa9", 0) == 4);         // a ZWJ | (c): no emoji before the ZWJ
}
