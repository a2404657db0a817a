// Classification metrics as scikit-learn computes them (accuracy, precision/recall/F1 per class and
// macro/micro/weighted, confusion matrix, log loss; multi-label subset accuracy and hamming loss),
// metric gates (`accuracy=0.85,f1_macro=0.8`), and hf-eval's reading of predictions JSONL.
// No torch: hf-train calls the report functions with class indices, hf-eval with JSON labels.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::metrics {

enum class Task { kSingleLabel, kMultiLabel };

struct ClassScores {
  std::string label;
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  std::int64_t support = 0;  // number of references with this label
};

// Zero division (a class never predicted, never referenced, or neither) gives 0 for that class'
// precision / recall / F1, which is scikit-learn's default `zero_division="warn"` without the
// warning; such classes still count in the macro average. A weighted average whose supports are
// all zero falls back to the plain mean, as scikit-learn's does.
struct Report {
  Task task = Task::kSingleLabel;
  std::int64_t num_samples = 0;
  std::vector<std::string> labels;  // class order of per_class and of the confusion matrix
  // Top-level numbers in output order. Single-label: accuracy, precision_macro, recall_macro,
  // f1_macro, precision_micro, recall_micro, f1_micro, precision_weighted, recall_weighted,
  // f1_weighted, then log_loss when probabilities were given. Multi-label: subset_accuracy,
  // accuracy (the same number: scikit-learn's accuracy_score on label sets), hamming_loss, then the
  // nine precision/recall/F1 averages.
  std::vector<std::pair<std::string, double>> scalars;
  std::vector<ClassScores> per_class;
  // Single-label only: [reference][prediction] counts, rows and columns in `labels` order.
  std::vector<std::vector<std::int64_t>> confusion_matrix;
  // Binary single-label input with scores (add_chart_metrics): per sample, the score of the
  // positive class labels[1] and whether the reference is it. Feeds the ROC/PR/histogram charts.
  std::vector<double> positive_scores;
  std::vector<std::uint8_t> positive_truth;

  std::optional<double> value(std::string_view metric) const;
};

// Single-label report. y_true and y_pred hold class indices into `labels` (every label counts, as
// scikit-learn's `labels=` argument). `p_true`, when not empty, holds the probability each sample
// gave its reference class; log_loss is then the mean of -log(clip(p, eps, 1 - eps)) with eps the
// float64 machine epsilon, as scikit-learn's log_loss.
// Requires: y_true.size() == y_pred.size() > 0, indices < labels.size(), p_true empty or same size.
// Throws Error(kInternal) when a requirement is broken.
Report single_label_report(std::span<const std::int64_t> y_true, std::span<const std::int64_t> y_pred,
                           std::vector<std::string> labels, std::span<const double> p_true = {});

// What hf-eval adds to a single-label report beyond HF's eval metrics (hf-train's evaluation
// leaves them out): "mcc" (scikit-learn's matthews_corrcoef, multiclass, 0 when undefined), and for
// two labels with `positive_scores` (one per sample: the probability of labels[1], scikit-learn's
// default positive label for sorted labels) "roc_auc" and "average_precision" as roc_auc_score and
// average_precision_score compute them, left out when the references hold one class only.
// Requires: `r` from single_label_report; positive_scores empty or one per sample.
void add_chart_metrics(Report& r, std::span<const std::int64_t> y_true, std::span<const double> positive_scores);

// Curves over (score, is_positive) pairs, thresholds at each distinct score, highest first, as
// scikit-learn's roc_curve (with drop_intermediate=False, starting at (0, 0)) and
// precision_recall_curve (ordered by increasing recall, starting at recall 0, precision 1).
struct Curve {
  std::vector<double> x, y;  // ROC: false/true positive rate; PR: recall/precision
};
Curve roc_curve(std::span<const double> scores, std::span<const std::uint8_t> positive);
Curve pr_curve(std::span<const double> scores, std::span<const std::uint8_t> positive);
// Area under the ROC curve (trapezoids), and average precision: sum over thresholds of
// (R_k - R_{k-1}) * P_k. Requires both classes present.
double roc_auc(std::span<const double> scores, std::span<const std::uint8_t> positive);
double average_precision(std::span<const double> scores, std::span<const std::uint8_t> positive);

// Multi-label report. y_true and y_pred are row-major multi-hot matrices [N, labels.size()] of 0/1.
// Requires: same size, N > 0. Throws Error(kInternal) when a requirement is broken.
Report multi_label_report(std::span<const std::uint8_t> y_true, std::span<const std::uint8_t> y_pred,
                          std::vector<std::string> labels);

// {"task", "num_samples", <scalars...>, "labels", "per_class": {label: {precision, recall, f1,
// support}}, "confusion_matrix" (single-label)}.
nlohmann::ordered_json to_json(const Report& report);
// A human-readable table (scikit-learn classification_report style, plus the confusion matrix when
// there are at most 20 classes), lines ending in '\n'.
std::string format_table(const Report& report);

// Gates: `--fail-under accuracy=0.85,f1_macro=0.8` (fails when value < threshold) and
// `--fail-over log_loss=0.4` (fails when value > threshold).
enum class GateKind { kFailUnder, kFailOver };
struct Gate {
  std::string metric;
  double threshold = 0;
  GateKind kind = GateKind::kFailUnder;
};
struct GateResult {
  Gate gate;
  double value = 0;
  bool passed = true;
};
// Names every Report can carry (for help text and validation).
const std::vector<std::string>& metric_names();
// Parses "name=value[,name=value...]". Throws Error(kUsage) for an unknown metric, a bad number,
// an empty part, or a lower-is-better metric (log_loss, hamming_loss) under kFailUnder and the
// reverse.
std::vector<Gate> parse_gates(std::string_view spec, GateKind kind);
// Throws Error(kUsage) when the report does not carry a gated metric (log_loss without scores,
// hamming_loss on single-label input).
std::vector<GateResult> check_gates(const Report& report, std::span<const Gate> gates);

// What hf-eval does; the options mirror its flags (see tools/hf-eval/README.md).
//
// Input: JSON Lines, one object per line (blank lines skipped). The prediction of a record is
// `prediction_field` (default "prediction"), its reference `reference_field` (default "label", the
// input field hf-predict passes through). With `references` set, references come from that file
// instead, joined by line number or, with `id_field`, by that field's value (every prediction needs
// exactly one reference and the reverse). A label is a string or an integer (integers are written
// in decimal; labels sort numerically when all are integers, by code point otherwise, as
// scikit-learn sorts them); a JSON array of labels makes the input multi-label (every record must
// then be an array). `scores_field` (default "scores") is an optional object {label: probability};
// when every single-label record has one, log_loss is reported (missing reference label in it or a
// value outside [0, 1] is a data error). Multi-label input reports no log loss.
struct EvalOptions {
  std::string predictions = "-";  // path or "-" for stdin
  std::string references;         // empty: references are in the predictions file
  std::string id_field;           // empty: join predictions and references by line
  std::string prediction_field = "prediction";
  std::string reference_field = "label";
  std::string scores_field = "scores";
  std::vector<std::string> labels;  // fixed label set and order; empty: sorted union of all labels
  std::string fail_under;           // gate spec, see parse_gates
  std::string fail_over;
  std::string report;        // "": none; FILE.html (or .htm) or FILE.md, see write_report
  std::string training_log;  // a metrics.jsonl whose curves the HTML report draws
};

struct EvalResult {
  Report report;
  std::vector<GateResult> gates;
  bool passed() const;
  // to_json(report) plus "gates": [{metric, kind, threshold, value, passed}] when gates were given.
  nlohmann::ordered_json to_json() const;
};

// hf-eval --report. HTML: one self-contained page (inline CSS and SVG, no script): metrics and
// per-class tables, confusion-matrix heat map, per-class P/R/F1 bars, with positive_scores the ROC
// and precision-recall curves and the score histogram by class, with a training log its loss,
// eval-metric and learning-rate curves; every chart is a <figure> holding one <svg>. Markdown: the
// tables (GitHub-flavoured) and the training log's last eval.
std::string html_report(const Report& report, const std::vector<nlohmann::json>& training_log, const std::string& title);
std::string markdown_report(const Report& report, const std::vector<nlohmann::json>& training_log);
// Writes `path` atomically, markdown for *.md, HTML otherwise; `training_log` ("" = none) is read
// as JSONL. Throws Error(kNoInput/kDataErr) for the log, Error(kCantCreate/kIo) for the output.
void write_report(const std::string& path, const Report& report, const std::string& training_log);
// Throws Error(kUsage) unless `path` ends in .html, .htm or .md.
void check_report_path(const std::string& path);

// Parses the gates first (Error(kUsage)), then reads and scores. Throws Error(kNoInput) when a file
// is missing, Error(kDataErr) "file:line: field "f": ..." for malformed or inconsistent records and
// for an input with no records, Error(kUsage) for a label of `labels` that is repeated.
EvalResult evaluate(const EvalOptions& options);

}  // namespace hf::metrics
