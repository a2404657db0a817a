// hf::model without Python: config.json parsing (good cases, then errors), HF's parameter names,
// HF's problem-type choice, and save_pretrained -> from_pretrained round trips.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/error.h"
#include "io/io.h"
#include "model/bert.h"
#include "support/temp_dir.h"
// libtorch's c10 logging defines its own CHECK; doctest's must win in this file.
#undef CHECK
#include <doctest/doctest.h>

using hf::model::BertConfig;
using hf::model::ProblemType;
using Json = nlohmann::ordered_json;

namespace {

Json tiny() {
  return Json::parse(R"({"model_type": "bert", "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16, "is_decoder": false,
    "id2label": {"1": "pos", "0": "neg"}, "label2id": {"neg": 0, "pos": 1}, "some_future_key": [1, 2]})");
}

}  // namespace

TEST_CASE("model: config.json fields, defaults and unknown keys") {
  const BertConfig c = BertConfig::from_json(tiny(), "config.json");
  CHECK(c.hidden_size == 8);
  CHECK(c.head_dim() == 4);
  CHECK(c.id2label == std::vector<std::string>{"neg", "pos"});
  CHECK(c.hidden_act == "gelu");
  CHECK(c.layer_norm_eps == 1e-12);
  CHECK(!c.problem_type);
  CHECK(!c.classifier_dropout);
  const Json out = c.to_json();
  CHECK(out["some_future_key"] == Json::array({1, 2}));
  CHECK(out["label2id"]["pos"] == 1);
  CHECK(out["id2label"]["0"] == "neg");
  CHECK(out["architectures"][0] == "BertForSequenceClassification");
  // Round trip.
  const BertConfig again = BertConfig::from_json(out, "again");
  CHECK(again.id2label == c.id2label);
  CHECK(again.to_json() == out);
  // No id2label: HF's two-label default head.
  Json bare = tiny();
  bare.erase("id2label");
  CHECK(BertConfig::from_json(bare, "bare").id2label == std::vector<std::string>{"LABEL_0", "LABEL_1"});
}

TEST_CASE("model: bad config.json values are data errors naming the key") {
  const std::pair<const char*, Json> bad[] = {
      {"hidden_size", 9},  // not a multiple of 2 heads
      {"hidden_act", "gelu_10"},
      {"model_type", "roberta"},
      {"position_embedding_type", "relative_key"},
      {"num_hidden_layers", "two"},
      {"id2label", Json::parse(R"({"0": "a", "2": "b"})")},
      {"problem_type", "ranking"},
      {"is_decoder", true},
      {"pad_token_id", 50},
  };
  for (const auto& [key, value] : bad) {
    CAPTURE(key);
    Json j = tiny();
    j[key] = value;
    try {
      BertConfig::from_json(j, "cfg.json");
      FAIL("no error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kConfig);
      CHECK(std::string(e.what()).find(key) != std::string::npos);
      CHECK(std::string(e.what()).find("cfg.json") != std::string::npos);
    }
  }
}

TEST_CASE("model: parameters carry HF's state-dict names") {
  hf::model::BertForSequenceClassification m(BertConfig::from_json(tiny(), "config.json"));
  std::vector<std::string> names;
  for (const auto& p : m->named_parameters()) names.push_back(p.key());
  // BertForSequenceClassification's keys for one layer, as transformers names them.
  const std::vector<std::string> want = {
      "bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
      "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
      "bert.embeddings.LayerNorm.bias", "bert.encoder.layer.0.attention.self.query.weight",
      "bert.encoder.layer.0.attention.self.query.bias", "bert.encoder.layer.0.attention.self.key.weight",
      "bert.encoder.layer.0.attention.self.key.bias", "bert.encoder.layer.0.attention.self.value.weight",
      "bert.encoder.layer.0.attention.self.value.bias", "bert.encoder.layer.0.attention.output.dense.weight",
      "bert.encoder.layer.0.attention.output.dense.bias", "bert.encoder.layer.0.attention.output.LayerNorm.weight",
      "bert.encoder.layer.0.attention.output.LayerNorm.bias", "bert.encoder.layer.0.intermediate.dense.weight",
      "bert.encoder.layer.0.intermediate.dense.bias", "bert.encoder.layer.0.output.dense.weight",
      "bert.encoder.layer.0.output.dense.bias", "bert.encoder.layer.0.output.LayerNorm.weight",
      "bert.encoder.layer.0.output.LayerNorm.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias",
      "classifier.weight", "classifier.bias"};
  CHECK(names == want);
  m->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = m->forward(torch::tensor({{2, 7, 3}, {2, 3, 0}}), torch::tensor({{1, 1, 1}, {1, 1, 0}}));
  CHECK(logits.sizes() == torch::IntArrayRef({2, 2}));
  CHECK_THROWS_AS(m->forward(torch::ones({1, 17}, torch::kLong)), hf::Error);  // > max_position_embeddings
}

TEST_CASE("model: problem type and loss follow HF's choice") {
  BertConfig c = BertConfig::from_json(tiny(), "config.json");
  CHECK(hf::model::resolve_problem_type(c, torch::tensor({0, 1})) == ProblemType::kSingleLabelClassification);
  CHECK(hf::model::resolve_problem_type(c, torch::ones({2, 2})) == ProblemType::kMultiLabelClassification);
  c.set_num_labels(1);
  CHECK(hf::model::resolve_problem_type(c, torch::tensor({0, 1})) == ProblemType::kRegression);
  c.problem_type = ProblemType::kMultiLabelClassification;
  CHECK(hf::model::resolve_problem_type(c, torch::tensor({0, 1})) == ProblemType::kMultiLabelClassification);
  // Cross-entropy of uniform logits over 2 classes is log 2.
  const torch::Tensor loss = hf::model::classification_loss(ProblemType::kSingleLabelClassification,
                                                            torch::zeros({3, 2}), torch::tensor({0, 1, 1}));
  CHECK(loss.item<double>() == doctest::Approx(std::log(2.0)));
}

TEST_CASE("model: save_pretrained then from_pretrained gives the same logits") {
  hf::test::TempDir dir;
  torch::manual_seed(3);
  hf::model::BertForSequenceClassification m(BertConfig::from_json(tiny(), "config.json"));
  m->eval();
  hf::model::save_pretrained(*m, dir.path());
  hf::model::LoadReport report;
  auto back = hf::model::from_pretrained(dir.path(), {}, &report);
  CHECK(report.missing.empty());
  CHECK(report.unexpected.empty());
  CHECK(back->config().id2label == m->config().id2label);
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::tensor({{2, 9, 4, 3}});
  CHECK(torch::equal(m->forward(ids), back->forward(ids)));
  // A different label count needs ignore_mismatched_sizes.
  hf::model::LoadOptions three;
  three.labels = {"a", "b", "c"};
  CHECK_THROWS_AS(hf::model::from_pretrained(dir.path(), three), hf::Error);
  three.ignore_mismatched_sizes = true;
  CHECK(hf::model::from_pretrained(dir.path(), three, &report)->config().num_labels() == 3);
  std::sort(report.mismatched.begin(), report.mismatched.end());
  CHECK(report.mismatched == std::vector<std::string>{"classifier.bias", "classifier.weight"});
}

namespace {

// Right-pads `texts` (and their token types) with id 0 into [B, T] ids, types and mask.
std::array<torch::Tensor, 3> pad(const std::vector<std::vector<std::int64_t>>& texts,
                                 const std::vector<std::vector<std::int64_t>>& types) {
  std::int64_t t = 0;
  for (const auto& x : texts) t = std::max(t, static_cast<std::int64_t>(x.size()));
  const auto b = static_cast<std::int64_t>(texts.size());
  torch::Tensor ids = torch::zeros({b, t}, torch::kLong), tt = torch::zeros({b, t}, torch::kLong);
  torch::Tensor mask = torch::zeros({b, t}, torch::kLong);
  for (std::int64_t i = 0; i < b; ++i)
    for (std::size_t k = 0; k < texts[static_cast<std::size_t>(i)].size(); ++k) {
      const auto kk = static_cast<std::int64_t>(k);
      ids[i][kk] = texts[static_cast<std::size_t>(i)][k];
      tt[i][kk] = types[static_cast<std::size_t>(i)][k];
      mask[i][kk] = 1;
    }
  return {ids, tt, mask};
}

}  // namespace

TEST_CASE("model: a padded batch runs on its real tokens and equals each text alone") {
  torch::manual_seed(5);
  Json j = tiny();
  j["num_hidden_layers"] = 2;
  j["type_vocab_size"] = 2;
  hf::model::BertForSequenceClassification m(BertConfig::from_json(j, "config.json"));
  m->eval();
  // 11 real tokens of 15 (the second text is a pair), and 15 of 16 (one padding token).
  const std::vector<std::vector<std::vector<std::int64_t>>> batches = {
      {{2, 9, 4, 7, 3}, {2, 3}, {2, 11, 12, 3}}, {{2, 9, 4, 7, 5, 6, 8, 3}, {2, 11, 12, 13, 14, 15, 3}}};
  const std::vector<std::vector<std::vector<std::int64_t>>> type_batches = {
      {{0, 0, 0, 0, 0}, {0, 1}, {0, 0, 1, 1}}, {{0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 1, 1, 1, 1}}};
  for (std::size_t n = 0; n < batches.size(); ++n) {
    const auto& texts = batches[n];
    const auto& types = type_batches[n];
    auto [ids, tt, mask] = pad(texts, types);
    torch::NoGradGuard no_grad;
    const torch::Tensor batch = m->forward(ids, mask, tt);
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const torch::Tensor one =
          m->forward(torch::tensor(texts[i]).unsqueeze(0), {}, torch::tensor(types[i]).unsqueeze(0));
      CHECK_MESSAGE(torch::allclose(batch[static_cast<std::int64_t>(i)], one[0], /*rtol=*/1e-5, /*atol=*/1e-6),
                    "batch ", n, " text ", i);
    }
  }
  // Training mode (dropout on) gives gradients through the packed path.
  auto [ids, tt, mask] = pad(batches[0], type_batches[0]);
  m->train();
  m->forward(ids, mask, tt).sum().backward();
  CHECK(m->bert->encoder->named_parameters()["layer.0.attention.self.query.weight"].grad().defined());
}

TEST_CASE("model: in eval mode the last layer runs for the first tokens only, with the full layer's values") {
  torch::manual_seed(6);
  Json j = tiny();
  j["num_hidden_layers"] = 3;
  hf::model::BertForSequenceClassification m(BertConfig::from_json(j, "config.json"));
  m->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::randint(4, 50, {3, 6}, torch::kLong);
  const torch::Tensor types = torch::zeros_like(ids);
  // No padding; right padding (packed rows, as hf-predict batches); left padding (position 0 is a
  // pad: the full path's result, whatever it is, must not change).
  const std::vector<torch::Tensor> masks = {torch::ones({3, 6}, torch::kLong),
                                            torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0},
                                                          torch::kLong).view({3, 6}),
                                            torch::tensor({1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1},
                                                          torch::kLong).view({3, 6})};
  for (std::size_t n = 0; n < masks.size(); ++n) {
    const auto layout = hf::model::TokenLayout::of(masks[n]);
    CHECK(layout.starts.defined() == (n == 1));
    const torch::Tensor x = m->bert->embeddings(ids, types, layout);
    const torch::Tensor want = layout.first(m->bert->encoder->forward(x, layout));  // every row, every layer
    const torch::Tensor got = m->bert->encoder->first_tokens(x, layout);
    REQUIRE(got.sizes() == want.sizes());
    CHECK_MESSAGE(torch::allclose(got, want, /*rtol=*/1e-5, /*atol=*/1e-6), "mask ", n);
  }
}

namespace {

// Rewrites dir/model.safetensors with `model`'s parameters, `name` replaced by `bytes` of `dtype`
// (shape [n]) and every key in `drop` left out.
void write_checkpoint(const hf::model::SequenceClassifier& model, const std::string& dir, const std::string& name,
                      hf::io::Dtype dtype, const std::string& bytes, const std::vector<std::string>& drop = {}) {
  hf::io::SafetensorsWriter w;
  std::vector<torch::Tensor> keep;
  for (const auto& p : model.named_parameters()) {
    if (std::find(drop.begin(), drop.end(), p.key()) != drop.end()) continue;
    if (p.key() == name) {
      const auto n = static_cast<std::int64_t>(bytes.size() / hf::io::dtype_size(dtype));
      w.add(p.key(), dtype, {n}, bytes);
      continue;
    }
    keep.push_back(p.value().detach().contiguous());
    w.add(p.key(), hf::io::Dtype::kF32, std::vector<std::int64_t>(keep.back().sizes().begin(), keep.back().sizes().end()),
          std::string_view(static_cast<const char*>(keep.back().data_ptr()), keep.back().nbytes()));
  }
  w.write(dir + "/model.safetensors");
}

template <typename T>
std::string bytes_of(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) s.append(reinterpret_cast<const char*>(&v), sizeof v);
  return s;
}

}  // namespace

TEST_CASE("model: from_pretrained without drawing weights first loads the same model, draws what is missing") {
  hf::test::TempDir dir;
  torch::manual_seed(3);
  hf::model::BertForSequenceClassification m(BertConfig::from_json(tiny(), "config.json"));
  m->eval();
  hf::model::save_pretrained(*m, dir.path());
  hf::model::LoadOptions fast;
  fast.init_weights = false;
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::tensor({{2, 9, 4, 3}});
  CHECK(torch::equal(m->forward(ids), hf::model::from_pretrained(dir.path(), fast)->forward(ids)));
  // Nothing was drawn: torch's generator is where it was. Drawing first (the default) moves it.
  const auto next_draw_after_load = [&](bool init_weights) {
    hf::model::LoadOptions o;
    o.init_weights = init_weights;
    torch::manual_seed(11);
    hf::model::from_pretrained(dir.path(), o);
    return torch::rand({4});
  };
  torch::manual_seed(11);
  const torch::Tensor untouched = torch::rand({4});
  CHECK(torch::equal(next_draw_after_load(false), untouched));
  CHECK_FALSE(torch::equal(next_draw_after_load(true), untouched));

  // A checkpoint without the head (a bare encoder): the head is drawn as HF draws it, not left as
  // whatever torch::empty held.
  write_checkpoint(*m, dir.path(), "", hf::io::Dtype::kF32, "", {"classifier.weight", "classifier.bias"});
  hf::model::LoadReport report;
  auto fresh = hf::model::from_pretrained(dir.path(), fast, &report);
  CHECK(report.missing.size() == 2);
  auto params = fresh->named_parameters();
  CHECK(torch::equal(params["classifier.bias"], torch::zeros({2})));
  const torch::Tensor w = params["classifier.weight"];
  CHECK(torch::isfinite(w).all().item<bool>());
  CHECK(w.abs().max().item<float>() < 0.2f);  // N(0, 0.02): 10 standard deviations
  CHECK(w.abs().max().item<float>() > 0.0f);
}

TEST_CASE("model: a weight holding NaN or infinity is refused in every float dtype, naming it") {
  hf::test::TempDir dir;
  hf::model::BertForSequenceClassification m(BertConfig::from_json(tiny(), "config.json"));
  hf::model::save_pretrained(*m, dir.path());
  const std::string key = "bert.embeddings.LayerNorm.weight";  // [8]
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    hf::io::Dtype dtype;
    std::string bad, good;
  };
  const std::vector<Case> cases = {
      {hf::io::Dtype::kF32, bytes_of<float>({1, 1, 1, 1, 1, 1, 1, nan}), bytes_of<float>({1, 1, 1, 1, 1, 1, 1, 3e38f})},
      {hf::io::Dtype::kF64, bytes_of<double>({1, 1, -std::numeric_limits<double>::infinity(), 1, 1, 1, 1, 1}),
       bytes_of<double>({1, 1, 1, 1, 1, 1, 1, 1e300})},
      // 0x7c00 is fp16's +inf, 0xfc01 a NaN; 0x7bff its largest finite value.
      {hf::io::Dtype::kF16, bytes_of<std::uint16_t>({0x3c00, 0x7c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00}),
       bytes_of<std::uint16_t>({0x3c00, 0x7bff, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00})},
      {hf::io::Dtype::kF16, bytes_of<std::uint16_t>({0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0xfc01}),
       bytes_of<std::uint16_t>({0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0x3c00, 0xfbff})},
      // bf16: 0x7f80 is +inf, 0x7fc0 a NaN; 0x7f7f its largest finite value.
      {hf::io::Dtype::kBF16, bytes_of<std::uint16_t>({0x3f80, 0x3f80, 0x3f80, 0x7fc0, 0x3f80, 0x3f80, 0x3f80, 0x3f80}),
       bytes_of<std::uint16_t>({0x3f80, 0x3f80, 0x3f80, 0x7f7f, 0x3f80, 0x3f80, 0x3f80, 0x3f80})},
  };
  for (const Case& c : cases) {
    CAPTURE(hf::io::dtype_name(c.dtype));
    write_checkpoint(*m, dir.path(), key, c.dtype, c.good);
    CHECK_NOTHROW(hf::model::from_pretrained(dir.path()));
    write_checkpoint(*m, dir.path(), key, c.dtype, c.bad);
    for (bool draw : {true, false}) {
      hf::model::LoadOptions o;
      o.init_weights = draw;
      try {
        hf::model::from_pretrained(dir.path(), o);
        FAIL("loaded a weight that is not finite");
      } catch (const hf::Error& e) {
        CHECK(e.kind() == hf::ErrorKind::kDataErr);
        CHECK(std::string(e.what()).find(key) != std::string::npos);
        CHECK(std::string(e.what()).find("NaN or infinite") != std::string::npos);
      }
    }
  }
}
