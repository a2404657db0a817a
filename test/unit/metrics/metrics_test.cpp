// Metrics against the worked examples of scikit-learn's documentation (precision_score, f1_score,
// log_loss, hamming_loss, accuracy_score pages), and gate parsing: good specs, then bad ones.
#include <doctest/doctest.h>

#include "core/error.h"
#include "metrics/metrics.h"

using hf::metrics::GateKind;

namespace {

double value(const hf::metrics::Report& r, const char* name) {
  auto v = r.value(name);
  REQUIRE_MESSAGE(v.has_value(), name);
  return *v;
}

}  // namespace

TEST_CASE("metrics: multiclass precision/recall/F1 match the scikit-learn docs example") {
  // y_true = [0, 1, 2, 0, 1, 2], y_pred = [0, 2, 1, 0, 0, 1]
  const std::vector<std::int64_t> t{0, 1, 2, 0, 1, 2}, p{0, 2, 1, 0, 0, 1};
  const auto r = hf::metrics::single_label_report(t, p, {"0", "1", "2"});
  CHECK(value(r, "precision_macro") == doctest::Approx(0.2222222222222222).epsilon(1e-15));
  CHECK(value(r, "precision_micro") == doctest::Approx(1.0 / 3).epsilon(1e-15));
  CHECK(value(r, "precision_weighted") == doctest::Approx(0.2222222222222222).epsilon(1e-15));
  CHECK(value(r, "recall_macro") == doctest::Approx(1.0 / 3).epsilon(1e-15));
  CHECK(value(r, "f1_macro") == doctest::Approx(0.26666666666666666).epsilon(1e-15));
  CHECK(value(r, "f1_micro") == doctest::Approx(1.0 / 3).epsilon(1e-15));
  CHECK(value(r, "f1_weighted") == doctest::Approx(0.26666666666666666).epsilon(1e-15));
  CHECK(value(r, "accuracy") == doctest::Approx(1.0 / 3).epsilon(1e-15));
  CHECK(r.confusion_matrix == std::vector<std::vector<std::int64_t>>{{2, 0, 0}, {1, 0, 1}, {0, 2, 0}});
  CHECK(!r.value("log_loss"));
}

TEST_CASE("metrics: log loss matches the scikit-learn docs example") {
  // log_loss(["spam", "ham", "ham", "spam"], [[.1, .9], [.9, .1], [.8, .2], [.35, .65]]); classes
  // sort as ham, spam, so each row's probability of its reference is:
  const std::vector<std::int64_t> t{1, 0, 0, 1};
  const std::vector<double> p_true{0.9, 0.9, 0.8, 0.65};
  const auto r = hf::metrics::single_label_report(t, t, {"ham", "spam"}, p_true);
  CHECK(value(r, "log_loss") == doctest::Approx(0.21616187468057912).epsilon(1e-15));
}

TEST_CASE("metrics: multi-label hamming loss and subset accuracy match the scikit-learn docs") {
  const std::vector<std::uint8_t> t{0, 1, 1, 1}, zeros(4, 0), ones(4, 1);
  CHECK(value(hf::metrics::multi_label_report(t, zeros, {"a", "b"}), "hamming_loss") == 0.75);
  CHECK(value(hf::metrics::multi_label_report(t, ones, {"a", "b"}), "subset_accuracy") == 0.5);
}

TEST_CASE("metrics: broken requirements are internal errors") {
  const std::vector<std::int64_t> one{0}, none;
  CHECK_THROWS_AS(hf::metrics::single_label_report(none, none, {"a"}), hf::Error);
  CHECK_THROWS_AS(hf::metrics::single_label_report(one, std::vector<std::int64_t>{3}, {"a"}), hf::Error);
}

TEST_CASE("metrics: gate specs parse") {
  struct Case {
    const char* spec;
    GateKind kind;
    std::vector<std::pair<std::string, double>> want;
  };
  const Case cases[] = {
      {"accuracy=0.85,f1_macro=0.8", GateKind::kFailUnder, {{"accuracy", 0.85}, {"f1_macro", 0.8}}},
      {" accuracy = 1 ", GateKind::kFailUnder, {{"accuracy", 1.0}}},
      {"", GateKind::kFailUnder, {}},
      {"log_loss=0.5,hamming_loss=1e-2", GateKind::kFailOver, {{"log_loss", 0.5}, {"hamming_loss", 0.01}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    const auto gates = hf::metrics::parse_gates(c.spec, c.kind);
    REQUIRE(gates.size() == c.want.size());
    for (std::size_t i = 0; i < gates.size(); ++i) {
      CHECK(gates[i].metric == c.want[i].first);
      CHECK(gates[i].threshold == c.want[i].second);
      CHECK(gates[i].kind == c.kind);
    }
  }
}

TEST_CASE("metrics: bad gate specs are usage errors") {
  const std::pair<const char*, GateKind> bad[] = {
      {"acc=0.9", GateKind::kFailUnder},      {"accuracy", GateKind::kFailUnder},
      {"accuracy=", GateKind::kFailUnder},    {"accuracy=high", GateKind::kFailUnder},
      {"accuracy=0.9,", GateKind::kFailUnder}, {"accuracy=0.9x", GateKind::kFailUnder},
      {"log_loss=0.5", GateKind::kFailUnder}, {"accuracy=0.5", GateKind::kFailOver},
      {"accuracy=nan", GateKind::kFailUnder},
  };
  for (const auto& [spec, kind] : bad) {
    CAPTURE(spec);
    try {
      hf::metrics::parse_gates(spec, kind);
      FAIL("no error");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kUsage);
    }
  }
}

TEST_CASE("metrics: gates pass at the threshold and fail past it") {
  const std::vector<std::int64_t> t{0, 1, 1, 0}, p{0, 1, 0, 0};
  const auto r = hf::metrics::single_label_report(t, p, {"a", "b"});
  auto gates = hf::metrics::parse_gates("accuracy=0.75,f1_macro=0.9", GateKind::kFailUnder);
  const auto res = hf::metrics::check_gates(r, gates);
  REQUIRE(res.size() == 2);
  CHECK(res[0].passed);
  CHECK(res[0].value == 0.75);
  CHECK(!res[1].passed);
  const auto missing = hf::metrics::parse_gates("log_loss=1", GateKind::kFailOver);
  CHECK_THROWS_AS(hf::metrics::check_gates(r, missing), hf::Error);
}

// Values from scikit-learn 1.9: roc_auc_score, average_precision_score, matthews_corrcoef.
TEST_CASE("roc_auc, average_precision and mcc match scikit-learn") {
  const std::vector<double> scores = {0.1, 0.4, 0.35, 0.8};
  const std::vector<std::uint8_t> pos = {0, 0, 1, 1};
  CHECK(hf::metrics::roc_auc(scores, pos) == doctest::Approx(0.75));
  CHECK(hf::metrics::average_precision(scores, pos) == doctest::Approx(0.8333333333333333));
  // Ties are one threshold: a diagonal ROC, AP = prevalence.
  const std::vector<double> tied = {0.5, 0.5, 0.5, 0.5};
  CHECK(hf::metrics::roc_auc(tied, pos) == doctest::Approx(0.5));
  CHECK(hf::metrics::average_precision(tied, pos) == doctest::Approx(0.5));

  const std::vector<std::int64_t> t = {0, 0, 1, 1}, p = {0, 1, 1, 1};
  auto r = hf::metrics::single_label_report(t, p, {"neg", "pos"});
  hf::metrics::add_chart_metrics(r, t, scores);
  CHECK(*r.value("mcc") == doctest::Approx(0.5773502691896258));
  CHECK(*r.value("roc_auc") == doctest::Approx(0.75));
  CHECK(*r.value("average_precision") == doctest::Approx(0.8333333333333333));
  CHECK(hf::metrics::to_json(r).contains("roc_auc"));

  // Multiclass MCC.
  const std::vector<std::int64_t> t3 = {0, 1, 2, 0, 1, 2, 2}, p3 = {0, 2, 2, 0, 1, 1, 2};
  auto r3 = hf::metrics::single_label_report(t3, p3, {"a", "b", "c"});
  hf::metrics::add_chart_metrics(r3, t3, {});
  CHECK(*r3.value("mcc") == doctest::Approx(0.5625));
  CHECK_FALSE(r3.value("roc_auc"));

  // One class only in the references: AUC undefined, left out; constant predictions: MCC 0.
  const std::vector<std::int64_t> ones = {1, 1, 1};
  auto r1 = hf::metrics::single_label_report(ones, ones, {"neg", "pos"});
  hf::metrics::add_chart_metrics(r1, ones, std::vector<double>{0.2, 0.5, 0.9});
  CHECK_FALSE(r1.value("roc_auc"));
  CHECK(*r1.value("mcc") == 0.0);
}

TEST_CASE("the new metrics can be gated") {
  const auto gates = hf::metrics::parse_gates("roc_auc=0.9,mcc=0.5,average_precision=0.5", hf::metrics::GateKind::kFailUnder);
  const std::vector<std::int64_t> t = {0, 0, 1, 1}, p = {0, 1, 1, 1};
  auto r = hf::metrics::single_label_report(t, p, {"neg", "pos"});
  hf::metrics::add_chart_metrics(r, t, std::vector<double>{0.1, 0.4, 0.35, 0.8});
  const auto results = hf::metrics::check_gates(r, gates);
  CHECK_FALSE(results[0].passed);
  CHECK(results[1].passed);
  CHECK(results[2].passed);
}
