// hf::predict without Python: thresholds, the heads (softmax / sigmoid + thresholds / raw values)
// against a per-text forward pass of the same tiny model, input order across length-sorted
// batches, and the refusal of non-finite weights and outputs.
#include <cfloat>
#include <cmath>
#include <fstream>
#include <thread>
#include <utility>

#include "core/error.h"
#include "model/bert.h"
#include "predict/predict.h"
#include "support/temp_dir.h"
#include "tokenizer/tokenizer.h"
// libtorch's c10 logging defines its own CHECK; doctest's must win in this file.
#undef CHECK
#include <doctest/doctest.h>

using hf::predict::Predictor;
using hf::predict::Task;
using Json = nlohmann::ordered_json;

namespace {

const std::vector<std::string> kVocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a",   "good",
                                         "bad",   "movie", "film",  "is",    "was",    "very", "not", "plot",
                                         "acting", "great", "dull", "and"};

// A tiny random BERT saved with a vocab.txt: `labels` as id2label, `problem_type` optional; `edit`
// changes parameters before saving.
void make_model(const std::string& dir, const std::vector<std::string>& labels, const char* problem_type,
                const std::function<void(hf::model::BertForSequenceClassification&)>& edit = {}) {
  Json id2label = Json::object();
  for (std::size_t i = 0; i < labels.size(); ++i) id2label[std::to_string(i)] = labels[i];
  Json c = {{"model_type", "bert"},        {"vocab_size", kVocab.size()}, {"hidden_size", 8},
            {"num_hidden_layers", 1},       {"num_attention_heads", 2},    {"intermediate_size", 16},
            {"max_position_embeddings", 32}, {"id2label", id2label}};
  if (problem_type) c["problem_type"] = problem_type;
  torch::manual_seed(7);
  hf::model::BertForSequenceClassification m(hf::model::BertConfig::from_json(c, "config.json"));
  if (edit) {
    torch::NoGradGuard no_grad;
    edit(m);
  }
  hf::model::save_pretrained(*m, dir);
  std::ofstream vocab(dir + "/vocab.txt");
  for (const auto& t : kVocab) vocab << t << "\n";
}

// Logits of one text alone (no padding, no batching): what every batched prediction must equal.
std::vector<float> reference_logits(const std::string& dir, std::string_view text) {
  auto tok = hf::tokenizer::Tokenizer::load(dir);
  auto model = hf::model::from_pretrained(dir);
  const auto e = tok.encode(text);
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor(std::vector<std::int64_t>(e.ids.begin(), e.ids.end())).unsqueeze(0);
  auto logits = model->forward(ids).contiguous();
  return {logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel()};
}

// Texts of different token counts, so length sorting reorders them.
const std::vector<std::string_view> kTexts = {"good", "the acting was very dull and the plot was not great",
                                              "a film", "bad movie", "great great great acting and plot",
                                              "", "the film is not good"};

// A handle on one parameter's storage (edits through it change the model).
torch::Tensor param(hf::model::BertForSequenceClassification& m, const std::string& name) {
  return *m->named_parameters().find(name);
}

}  // namespace

TEST_CASE("predict: thresholds parse to one per label") {
  const std::vector<std::string> labels = {"a", "b", "c=d"};
  struct Case { const char* spec; std::vector<float> want; };
  const Case good[] = {{"", {0.5f, 0.5f, 0.5f}},
                       {"0.3", {0.3f, 0.3f, 0.3f}},
                       {"b=0.9", {0.5f, 0.9f, 0.5f}},
                       {"0.2,a=0.7", {0.7f, 0.2f, 0.2f}},
                       {"a=0.7,0.2", {0.7f, 0.2f, 0.2f}},
                       {"c=d=1", {0.5f, 0.5f, 1.0f}}};
  for (const auto& c : good) {
    CAPTURE(c.spec);
    CHECK(hf::predict::parse_thresholds(c.spec, labels) == c.want);
  }
  for (const char* bad : {"x=0.5", "a=1.5", "a=-0.1", "a=", "0.5,,b=0.1", "nan", "a=0.5x"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(hf::predict::parse_thresholds(bad, labels), hf::Error);
  }
}

TEST_CASE("predict: softmax head, in input order whatever the batch size") {
  hf::test::TempDir dir;
  make_model(dir.path(), {"neg", "pos", "mixed"}, nullptr);
  for (std::size_t batch : {1, 2, 3, 32}) {
    CAPTURE(batch);
    hf::predict::PredictorOptions o;
    o.batch_size = batch;
    o.threads = 1;
    const Predictor p(dir.path(), o);
    REQUIRE(p.task() == Task::kSingleLabel);
    const auto preds = p.predict(kTexts);
    REQUIRE(preds.size() == kTexts.size());
    for (std::size_t i = 0; i < kTexts.size(); ++i) {
      CAPTURE(kTexts[i]);
      const auto logits = reference_logits(dir.path(), kTexts[i]);
      const auto probs = torch::softmax(torch::tensor(logits, torch::kDouble), 0);
      REQUIRE(preds[i].scores.size() == 3);
      for (std::size_t j = 0; j < 3; ++j) CHECK(preds[i].scores[j] == doctest::Approx(probs[j].item<double>()).epsilon(1e-5));
      CHECK(preds[i].label == std::max_element(logits.begin(), logits.end()) - logits.begin());
      CHECK(preds[i].error.empty());
    }
  }
}

TEST_CASE("predict: batches in parallel give the answers of one at a time, in input order") {
  hf::test::TempDir dir;
  make_model(dir.path(), {"neg", "pos", "mixed"}, nullptr);
  // One text that cannot be tokenized (invalid UTF-8) keeps its error in its own row.
  std::vector<std::string_view> texts(kTexts.begin(), kTexts.end());
  texts.insert(texts.begin() + 2, "\xff\xfe");
  hf::predict::PredictorOptions one;
  one.batch_size = 1;
  one.threads = 1;
  const auto want = Predictor(dir.path(), one).predict(texts);
  REQUIRE(!want[2].error.empty());
  struct Case { int threads, parallel; std::size_t batch; };
  for (const Case c : {Case{2, 2, 1}, Case{4, 4, 1}, Case{4, 2, 2}, Case{4, 0, 1}, Case{3, 3, 3}}) {
    CAPTURE(c.threads);
    CAPTURE(c.parallel);
    CAPTURE(c.batch);
    hf::predict::PredictorOptions o;
    o.batch_size = c.batch;
    o.threads = c.threads;
    o.parallel_batches = c.parallel;
    const Predictor p(dir.path(), o);
    // Each batch gets an equal share of the threads (auto: 4 threads -> 4 batches of one).
    CHECK(torch::get_num_threads() == (c.parallel == 0 ? 1 : c.threads / c.parallel));
    // Two callers at once (as server threads would): the second runs its batches on its own thread.
    std::vector<hf::predict::Prediction> other;
    std::thread t([&] { other = p.predict(texts); });
    const auto got = p.predict(texts);
    t.join();
    for (const std::vector<hf::predict::Prediction>* preds : {&got, &std::as_const(other)}) {
      REQUIRE(preds->size() == want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);
        CHECK((*preds)[i].error == want[i].error);
        CHECK((*preds)[i].label == want[i].label);
        CHECK((*preds)[i].tokens == want[i].tokens);
        REQUIRE((*preds)[i].scores.size() == want[i].scores.size());
        for (std::size_t j = 0; j < want[i].scores.size(); ++j)
          CHECK((*preds)[i].scores[j] == doctest::Approx(want[i].scores[j]).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("predict: --parallel-batches must divide the threads and stays off a CUDA device") {
  hf::test::TempDir dir;
  make_model(dir.path(), {"neg", "pos"}, nullptr);
  auto refused = [&](int threads, int parallel, const char* device, const char* says) {
    CAPTURE(threads);
    CAPTURE(parallel);
    hf::predict::PredictorOptions o;
    o.threads = threads;
    o.parallel_batches = parallel;
    o.device = device;
    try {
      Predictor p(dir.path(), o);
      FAIL("expected an error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kUsage);
      CHECK(std::string(e.what()).find(says) != std::string::npos);
    }
  };
  refused(4, 3, "cpu", "must divide the thread count (4)");
  refused(2, 4, "cpu", "must divide the thread count (2)");
  refused(2, -1, "cpu", "0 (auto) or more");
  refused(2, 2, "cuda", "not --device cuda");
  hf::predict::PredictorOptions fine;
  fine.threads = 2;
  fine.parallel_batches = 1;
  fine.device = "cpu";
  CHECK_NOTHROW(Predictor(dir.path(), fine));
}

TEST_CASE("predict: sigmoid head with per-label thresholds") {
  hf::test::TempDir dir;
  make_model(dir.path(), {"a", "b", "c"}, "multi_label_classification");
  hf::predict::PredictorOptions o;
  o.threshold = "0.5,a=0,c=1";  // a: always above, c: never above
  const Predictor p(dir.path(), o);
  REQUIRE(p.task() == Task::kMultiLabel);
  const auto preds = p.predict(kTexts);
  for (std::size_t i = 0; i < kTexts.size(); ++i) {
    const auto logits = reference_logits(dir.path(), kTexts[i]);
    std::vector<std::int64_t> want = {0};
    for (std::size_t j = 0; j < 3; ++j) {
      const double sig = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[j])));
      CHECK(preds[i].scores[j] == doctest::Approx(sig).epsilon(1e-5));
      if (j == 1 && preds[i].scores[j] > 0.5f) want.push_back(1);
    }
    CHECK(preds[i].labels == want);
  }
  hf::predict::PredictorOptions single;
  single.threshold = "0.5";
  hf::test::TempDir other;
  make_model(other.path(), {"neg", "pos"}, nullptr);
  CHECK_THROWS_AS(Predictor(other.path(), single), hf::Error);  // thresholds are for multi-label only
}

TEST_CASE("predict: regression gives the raw values, one or several outputs") {
  for (const auto& labels : {std::vector<std::string>{"LABEL_0"}, std::vector<std::string>{"x", "y"}}) {
    CAPTURE(labels.size());
    hf::test::TempDir dir;
    make_model(dir.path(), labels, labels.size() == 1 ? nullptr : "regression");
    const Predictor p(dir.path(), {});
    REQUIRE(p.task() == Task::kRegression);
    const auto preds = p.predict(kTexts);
    for (std::size_t i = 0; i < kTexts.size(); ++i) {
      const auto logits = reference_logits(dir.path(), kTexts[i]);
      REQUIRE(preds[i].scores.size() == labels.size());
      for (std::size_t j = 0; j < labels.size(); ++j) CHECK(preds[i].scores[j] == doctest::Approx(logits[j]).epsilon(1e-5));
    }
  }
}

TEST_CASE("predict: NaN weights are refused at load, non-finite outputs at run time") {
  hf::test::TempDir nan_dir;
  make_model(nan_dir.path(), {"neg", "pos"}, nullptr,
             [](auto& m) { param(m, "bert.encoder.layer.0.output.dense.weight")[0][1] = NAN; });
  try {
    Predictor p(nan_dir.path(), {});
    FAIL("expected an error");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kDataErr);
    CHECK(std::string(e.what()).find("bert.encoder.layer.0.output.dense.weight") != std::string::npos);
    CHECK(std::string(e.what()).find("NaN") != std::string::npos);
  }
  // Finite weights that overflow: the pooler saturates at tanh(100) = 1, so every logit is
  // 2 x FLT_MAX + FLT_MAX = inf.
  hf::test::TempDir inf_dir;
  make_model(inf_dir.path(), {"neg", "pos"}, nullptr, [](auto& m) {
    param(m, "bert.pooler.dense.weight").zero_();
    param(m, "bert.pooler.dense.bias").fill_(100.0);
    param(m, "classifier.weight").fill_(FLT_MAX);
    param(m, "classifier.bias").fill_(FLT_MAX);
  });
  // One batch at a time, and one per worker: the error comes back from a worker thread too.
  for (int parallel : {1, 2}) {
    CAPTURE(parallel);
    hf::predict::PredictorOptions o;
    o.threads = 2;
    o.parallel_batches = parallel;
    o.batch_size = 2;
    const Predictor p(inf_dir.path(), o);
    try {
      (void)p.predict(kTexts);
      FAIL("expected an error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kDataErr);
      CHECK(std::string(e.what()).find("not finite") != std::string::npos);
    }
  }
}
