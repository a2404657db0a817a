// Single- and multi-label classification reports, computed the way scikit-learn's
// precision_recall_fscore_support / accuracy_score / hamming_loss / log_loss / confusion_matrix do
// (https://scikit-learn.org/stable/modules/model_evaluation.html), plus their JSON and table forms.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "metrics/metrics.h"

namespace hf::metrics {
namespace {

// Per-class counts; precision = tp / pred, recall = tp / true, F1 = 2 tp / (true + pred).
struct Counts {
  std::vector<std::int64_t> tp, pred, truth;
  explicit Counts(std::size_t k) : tp(k, 0), pred(k, 0), truth(k, 0) {}
};

// scikit-learn's _prf_divide with zero_division="warn": 0 where the denominator is 0.
double divide(double num, double den) { return den == 0 ? 0.0 : num / den; }

// Fills per_class and the nine averaged scalars from the counts.
void add_prf(Report& r, const Counts& c) {
  const std::size_t k = r.labels.size();
  std::int64_t tp = 0, pred = 0, truth = 0;
  double p_sum = 0, r_sum = 0, f_sum = 0, pw = 0, rw = 0, fw = 0;
  for (std::size_t i = 0; i < k; ++i) {
    ClassScores s;
    s.label = r.labels[i];
    s.precision = divide(c.tp[i], c.pred[i]);
    s.recall = divide(c.tp[i], c.truth[i]);
    s.f1 = divide(2.0 * c.tp[i], c.truth[i] + c.pred[i]);
    s.support = c.truth[i];
    tp += c.tp[i];
    pred += c.pred[i];
    truth += c.truth[i];
    p_sum += s.precision;
    r_sum += s.recall;
    f_sum += s.f1;
    pw += s.precision * s.support;
    rw += s.recall * s.support;
    fw += s.f1 * s.support;
    r.per_class.push_back(std::move(s));
  }
  const double kd = static_cast<double>(k);
  r.scalars.emplace_back("precision_macro", p_sum / kd);
  r.scalars.emplace_back("recall_macro", r_sum / kd);
  r.scalars.emplace_back("f1_macro", f_sum / kd);
  r.scalars.emplace_back("precision_micro", divide(tp, pred));
  r.scalars.emplace_back("recall_micro", divide(tp, truth));
  r.scalars.emplace_back("f1_micro", divide(2.0 * tp, truth + pred));
  // All supports zero: scikit-learn's _nanaverage falls back to the unweighted mean.
  const double w = static_cast<double>(truth);
  r.scalars.emplace_back("precision_weighted", w == 0 ? p_sum / kd : pw / w);
  r.scalars.emplace_back("recall_weighted", w == 0 ? r_sum / kd : rw / w);
  r.scalars.emplace_back("f1_weighted", w == 0 ? f_sum / kd : fw / w);
}

void require(bool ok, const char* what) {
  if (!ok) throw Error(ErrorKind::kInternal, std::string("metrics: ") + what);
}

}  // namespace

std::optional<double> Report::value(std::string_view metric) const {
  for (const auto& [name, v] : scalars)
    if (name == metric) return v;
  return std::nullopt;
}

Report single_label_report(std::span<const std::int64_t> y_true, std::span<const std::int64_t> y_pred,
                           std::vector<std::string> labels, std::span<const double> p_true) {
  const std::size_t n = y_true.size(), k = labels.size();
  require(n > 0 && y_pred.size() == n, "y_true and y_pred must have the same, non-zero size");
  require(p_true.empty() || p_true.size() == n, "p_true must be empty or one per sample");
  require(k > 0, "no labels");
  Report r;
  r.task = Task::kSingleLabel;
  r.num_samples = static_cast<std::int64_t>(n);
  r.labels = std::move(labels);
  r.confusion_matrix.assign(k, std::vector<std::int64_t>(k, 0));
  Counts c(k);
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t t = y_true[i], p = y_pred[i];
    require(t >= 0 && p >= 0 && static_cast<std::size_t>(t) < k && static_cast<std::size_t>(p) < k,
            "class index out of range");
    ++r.confusion_matrix[t][p];
    ++c.truth[t];
    ++c.pred[p];
    if (t == p) {
      ++c.tp[t];
      ++correct;
    }
  }
  r.scalars.emplace_back("accuracy", static_cast<double>(correct) / static_cast<double>(n));
  add_prf(r, c);
  if (!p_true.empty()) {
    constexpr double kEps = std::numeric_limits<double>::epsilon();
    double sum = 0;
    for (double p : p_true) sum += -std::log(std::clamp(p, kEps, 1 - kEps));
    r.scalars.emplace_back("log_loss", sum / static_cast<double>(n));
  }
  return r;
}

namespace {

// Cumulative (false positives, true positives) at each distinct score, highest score first,
// starting at (0, 0): the points every threshold curve is drawn from.
std::vector<std::pair<double, double>> threshold_counts(std::span<const double> scores,
                                                        std::span<const std::uint8_t> positive) {
  require(scores.size() == positive.size(), "scores and labels must have the same size");
  std::vector<std::size_t> order(scores.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  std::vector<std::pair<double, double>> points = {{0.0, 0.0}};
  double fp = 0, tp = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    (positive[order[i]] ? tp : fp) += 1;
    if (i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]]) points.emplace_back(fp, tp);
  }
  return points;
}

}  // namespace

Curve roc_curve(std::span<const double> scores, std::span<const std::uint8_t> positive) {
  const auto points = threshold_counts(scores, positive);
  const double fp = points.back().first, tp = points.back().second;
  Curve c;
  for (const auto& [f, t] : points) {
    c.x.push_back(divide(f, fp));
    c.y.push_back(divide(t, tp));
  }
  return c;
}

Curve pr_curve(std::span<const double> scores, std::span<const std::uint8_t> positive) {
  const auto points = threshold_counts(scores, positive);
  const double tp_all = points.back().second;
  Curve c{{0.0}, {1.0}};
  for (std::size_t i = 1; i < points.size(); ++i) {
    const auto [f, t] = points[i];
    c.x.push_back(divide(t, tp_all));
    c.y.push_back(divide(t, t + f));
  }
  return c;
}

double roc_auc(std::span<const double> scores, std::span<const std::uint8_t> positive) {
  const Curve c = roc_curve(scores, positive);
  double area = 0;
  for (std::size_t i = 1; i < c.x.size(); ++i) area += (c.x[i] - c.x[i - 1]) * (c.y[i] + c.y[i - 1]) / 2;
  return area;
}

double average_precision(std::span<const double> scores, std::span<const std::uint8_t> positive) {
  const Curve c = pr_curve(scores, positive);
  double ap = 0;
  for (std::size_t i = 1; i < c.x.size(); ++i) ap += (c.x[i] - c.x[i - 1]) * c.y[i];
  return ap;
}

void add_chart_metrics(Report& r, std::span<const std::int64_t> y_true, std::span<const double> positive_scores) {
  require(r.task == Task::kSingleLabel && static_cast<std::int64_t>(y_true.size()) == r.num_samples,
          "add_chart_metrics needs the single-label report of y_true");
  // scikit-learn's matthews_corrcoef from the confusion matrix C: t = row sums, p = column sums.
  const std::size_t k = r.labels.size();
  double n = 0, correct = 0, tp_dot = 0, pp_dot = 0, tt_dot = 0;
  for (std::size_t i = 0; i < k; ++i) {
    double t = 0, p = 0;
    for (std::size_t j = 0; j < k; ++j) {
      t += static_cast<double>(r.confusion_matrix[i][j]);
      p += static_cast<double>(r.confusion_matrix[j][i]);
    }
    n += t;
    correct += static_cast<double>(r.confusion_matrix[i][i]);
    tp_dot += t * p;
    pp_dot += p * p;
    tt_dot += t * t;
  }
  const double cov_tp = correct * n - tp_dot, cov_pp = n * n - pp_dot, cov_tt = n * n - tt_dot;
  r.scalars.emplace_back("mcc", cov_pp * cov_tt == 0 ? 0.0 : cov_tp / std::sqrt(cov_tt * cov_pp));
  if (k != 2 || positive_scores.empty()) return;
  require(positive_scores.size() == y_true.size(), "positive_scores must be empty or one per sample");
  r.positive_scores.assign(positive_scores.begin(), positive_scores.end());
  r.positive_truth.clear();
  for (std::int64_t t : y_true) r.positive_truth.push_back(t == 1);
  const auto positives = std::count(r.positive_truth.begin(), r.positive_truth.end(), 1);
  if (positives == 0 || positives == r.num_samples) return;  // scikit-learn: undefined
  r.scalars.emplace_back("roc_auc", roc_auc(r.positive_scores, r.positive_truth));
  r.scalars.emplace_back("average_precision", average_precision(r.positive_scores, r.positive_truth));
}

Report multi_label_report(std::span<const std::uint8_t> y_true, std::span<const std::uint8_t> y_pred,
                          std::vector<std::string> labels) {
  const std::size_t k = labels.size();
  require(k > 0, "no labels");
  require(y_true.size() == y_pred.size() && !y_true.empty() && y_true.size() % k == 0,
          "y_true and y_pred must be [N, K] with N > 0");
  const std::size_t n = y_true.size() / k;
  Report r;
  r.task = Task::kMultiLabel;
  r.num_samples = static_cast<std::int64_t>(n);
  r.labels = std::move(labels);
  Counts c(k);
  std::int64_t exact = 0, mismatches = 0;
  for (std::size_t i = 0; i < n; ++i) {
    bool same = true;
    for (std::size_t j = 0; j < k; ++j) {
      const bool t = y_true[i * k + j] != 0, p = y_pred[i * k + j] != 0;
      c.truth[j] += t;
      c.pred[j] += p;
      c.tp[j] += t && p;
      if (t != p) {
        same = false;
        ++mismatches;
      }
    }
    exact += same;
  }
  const double subset = static_cast<double>(exact) / static_cast<double>(n);
  r.scalars.emplace_back("subset_accuracy", subset);
  r.scalars.emplace_back("accuracy", subset);
  r.scalars.emplace_back("hamming_loss", static_cast<double>(mismatches) / static_cast<double>(n * k));
  add_prf(r, c);
  return r;
}

nlohmann::ordered_json to_json(const Report& r) {
  nlohmann::ordered_json j;
  j["task"] = r.task == Task::kSingleLabel ? "single_label_classification" : "multi_label_classification";
  j["num_samples"] = r.num_samples;
  for (const auto& [name, v] : r.scalars) j[name] = v;
  j["labels"] = r.labels;
  nlohmann::ordered_json per = nlohmann::ordered_json::object();
  for (const ClassScores& s : r.per_class)
    per[s.label] = {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}, {"support", s.support}};
  j["per_class"] = std::move(per);
  if (r.task == Task::kSingleLabel) j["confusion_matrix"] = r.confusion_matrix;
  return j;
}

std::string format_table(const Report& r) {
  constexpr std::size_t kMaxMatrixClasses = 20;  // wider matrices are unreadable on a terminal
  std::size_t width = 12;
  for (const std::string& l : r.labels) width = std::max(width, l.size());
  std::string out = fmt::format("{:>{}}  {:>9}  {:>9}  {:>9}  {:>9}\n", "", width, "precision", "recall",
                                "f1", "support");
  std::int64_t support = 0;
  for (const ClassScores& s : r.per_class) {
    out += fmt::format("{:>{}}  {:>9.4f}  {:>9.4f}  {:>9.4f}  {:>9}\n", s.label, width, s.precision,
                       s.recall, s.f1, s.support);
    support += s.support;
  }
  out += "\n";
  for (const char* avg : {"micro", "macro", "weighted"}) {
    auto v = [&](const char* m) { return r.value(fmt::format("{}_{}", m, avg)).value_or(0); };
    out += fmt::format("{:>{}}  {:>9.4f}  {:>9.4f}  {:>9.4f}  {:>9}\n", fmt::format("{} avg", avg), width,
                       v("precision"), v("recall"), v("f1"), support);
  }
  for (const char* m : {"accuracy", "subset_accuracy", "hamming_loss", "log_loss"}) {
    if (r.task == Task::kMultiLabel && std::string_view(m) == "accuracy") continue;
    if (auto v = r.value(m)) out += fmt::format("{:>{}}  {:>9.4f}  ({} samples)\n", m, width, *v, r.num_samples);
  }
  if (r.task == Task::kSingleLabel && r.labels.size() <= kMaxMatrixClasses) {
    out += "\nconfusion matrix (rows: reference, columns: prediction, in the order above)\n";
    for (std::size_t i = 0; i < r.labels.size(); ++i) {
      out += fmt::format("{:>{}} ", r.labels[i], width);
      for (std::int64_t v : r.confusion_matrix[i]) out += fmt::format(" {:>7}", v);
      out += "\n";
    }
  }
  return out;
}

}  // namespace hf::metrics
