// hf-eval --report: the evaluation as a page people look at. HTML: one self-contained file (inline
// CSS and SVG drawn here, no script, nothing fetched) with the metrics table, confusion-matrix heat
// map, per-class P/R/F1 bars, binary ROC and PR curves, the score histogram by class, and the
// training curves of a metrics.jsonl. Markdown: the tables only (GitHub job summaries).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/file.h"
#include "io/io.h"
#include "metrics/metrics.h"
#include "storage/xml.h"

namespace hf::metrics {
namespace {

using json = nlohmann::json;

// Chart geometry, in SVG user units (the page scales them).
constexpr double kWidth = 480, kHeight = 300;
constexpr double kLeft = 56, kRight = 16, kTop = 16, kBottom = 44;
constexpr int kHistogramBins = 20;
const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};

// HTML text and attribute values: XML's escaping (&apos; is HTML5 too), one implementation.
std::string escape(std::string_view s) { return storage::xml::escape(s); }

std::string figure(const std::string& id, const std::string& caption, const std::string& body, double w = kWidth,
                   double h = kHeight) {
  return fmt::format("<figure id=\"{}\"><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" "
                     "viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\">{}</svg></figure>\n",
                     id, escape(caption), w, h, w, h, body);
}

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// Axes with 5 ticks each, one polyline per series, a legend; `unit` fixes y to [0, 1].
std::string line_chart(const std::vector<Series>& series, const std::string& x_label, const std::string& y_label,
                       bool unit_y, bool unit_x = false) {
  double x0 = unit_x ? 0 : 1e300, x1 = unit_x ? 1 : -1e300, y0 = unit_y ? 0 : 1e300, y1 = unit_y ? 1 : -1e300;
  for (const Series& s : series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (!unit_x) x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      if (!unit_y) y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  if (x0 > x1) x0 = 0, x1 = 1;
  if (y0 > y1) y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return kTop + ph - (y - y0) / (y1 - y0) * ph; };
  std::string svg = fmt::format("<rect class=\"plot\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>", kLeft, kTop, pw, ph);
  for (int t = 0; t <= 4; ++t) {
    const double xv = x0 + (x1 - x0) * t / 4, yv = y0 + (y1 - y0) * t / 4;
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.3g}</text>", px(xv),
                       kTop + ph + 14, xv);
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3g}</text>", kLeft - 4,
                       py(yv) + 4, yv);
    svg += fmt::format("<line class=\"grid\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>", kLeft, py(yv),
                       kLeft + pw, py(yv));
  }
  svg += fmt::format("<text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", kLeft + pw / 2,
                     kHeight - 8, escape(x_label));
  svg += fmt::format("<text class=\"label\" transform=\"translate(12 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
                     kTop + ph / 2, escape(y_label));
  for (std::size_t k = 0; k < series.size(); ++k) {
    const char* color = kColors[k % std::size(kColors)];
    std::string points;
    for (std::size_t i = 0; i < series[k].x.size(); ++i)
      if (std::isfinite(series[k].x[i]) && std::isfinite(series[k].y[i]))
        points += fmt::format("{:.1f},{:.1f} ", px(series[k].x[i]), py(series[k].y[i]));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>", color, points);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"{}\"/>"
                       "<text class=\"legend\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>",
                       kLeft + 8, kTop + 6 + 14.0 * k, color, kLeft + 22, kTop + 15 + 14.0 * k, escape(series[k].name));
  }
  return svg;
}

// Cells shaded by the share of their row (the reference class), counts written in each.
std::string confusion_svg(const Report& r, double& w, double& h) {
  const std::size_t k = r.labels.size();
  const double cell = std::clamp(360.0 / static_cast<double>(k), 14.0, 72.0), left = 110, top = 24;
  w = left + cell * static_cast<double>(k) + 10;
  h = top + cell * static_cast<double>(k) + 40;
  std::string svg = fmt::format("<text class=\"label\" x=\"{:.1f}\" y=\"14\" text-anchor=\"middle\">predicted</text>",
                                left + cell * static_cast<double>(k) / 2);
  for (std::size_t i = 0; i < k; ++i) {
    std::int64_t row = 0;
    for (std::int64_t v : r.confusion_matrix[i]) row += v;
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", left - 4,
                       top + cell * (static_cast<double>(i) + 0.5) + 4, escape(r.labels[i]));
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>",
                       left + cell * (static_cast<double>(i) + 0.5), top + cell * static_cast<double>(k) + 14,
                       escape(r.labels[i]));
    for (std::size_t j = 0; j < k; ++j) {
      const std::int64_t v = r.confusion_matrix[i][j];
      const double share = row ? static_cast<double>(v) / static_cast<double>(row) : 0.0;
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"rgb({},{},{})\">"
                         "<title>{} as {}: {}</title></rect>",
                         left + cell * static_cast<double>(j), top + cell * static_cast<double>(i), cell, cell,
                         static_cast<int>(255 - 224 * share), static_cast<int>(255 - 136 * share),
                         static_cast<int>(255 - 75 * share), escape(r.labels[i]), escape(r.labels[j]), v);
      if (cell >= 18)
        svg += fmt::format("<text class=\"count{}\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>",
                           share > 0.5 ? " dark" : "", left + cell * (static_cast<double>(j) + 0.5),
                           top + cell * (static_cast<double>(i) + 0.5) + 4, v);
    }
  }
  svg += fmt::format("<text class=\"label\" transform=\"translate(12 {:.1f}) rotate(-90)\" text-anchor=\"middle\">reference</text>",
                     top + cell * static_cast<double>(k) / 2);
  return svg;
}

// Grouped bars: precision, recall, F1 per class.
std::string class_bars_svg(const Report& r, double& w) {
  const double group = std::max(36.0, 360.0 / static_cast<double>(r.per_class.size()));
  w = kLeft + group * static_cast<double>(r.per_class.size()) + kRight + 90;
  const double ph = kHeight - kTop - kBottom, bar = group * 0.8 / 3;
  std::string svg;
  for (int t = 0; t <= 4; ++t)
    svg += fmt::format("<line class=\"grid\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/><text class=\"tick\" "
                       "x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f}</text>",
                       kLeft, kTop + ph * (1 - t / 4.0), w - 90, kTop + ph * (1 - t / 4.0), kLeft - 4,
                       kTop + ph * (1 - t / 4.0) + 4, t / 4.0);
  const char* names[] = {"precision", "recall", "F1"};
  for (std::size_t c = 0; c < r.per_class.size(); ++c) {
    const ClassScores& s = r.per_class[c];
    const double values[] = {s.precision, s.recall, s.f1};
    const double gx = kLeft + group * static_cast<double>(c) + group * 0.1;
    for (int m = 0; m < 3; ++m)
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{} {}: "
                         "{:.4f}</title></rect>",
                         gx + bar * m, kTop + ph * (1 - values[m]), bar, ph * values[m], kColors[m], escape(s.label),
                         names[m], values[m]);
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", gx + bar * 1.5,
                       kTop + ph + 14, escape(s.label));
  }
  for (int m = 0; m < 3; ++m)
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"{}\"/><text class=\"legend\" "
                       "x=\"{:.1f}\" y=\"{:.1f}\">{}</text>",
                       w - 84, kTop + 14.0 * m, kColors[m], w - 70, kTop + 9 + 14.0 * m, names[m]);
  return svg;
}

// Scores of the positive class, binned, one translucent bar set per reference class.
std::string histogram_svg(const Report& r) {
  std::vector<double> counts[2] = {std::vector<double>(kHistogramBins, 0), std::vector<double>(kHistogramBins, 0)};
  for (std::size_t i = 0; i < r.positive_scores.size(); ++i) {
    const int b = std::clamp(static_cast<int>(r.positive_scores[i] * kHistogramBins), 0, kHistogramBins - 1);
    counts[r.positive_truth[i]][b] += 1;
  }
  double top = 1;
  for (const auto& c : counts) top = std::max(top, *std::max_element(c.begin(), c.end()));
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom, bw = pw / kHistogramBins;
  std::string svg = fmt::format("<rect class=\"plot\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>", kLeft, kTop, pw, ph);
  for (int t = 0; t <= 4; ++t)
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.2f}</text>"
                       "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}</text>",
                       kLeft + pw * t / 4, kTop + ph + 14, t / 4.0, kLeft - 4, kTop + ph * (1 - t / 4.0) + 4, top * t / 4);
  for (int cls = 0; cls < 2; ++cls) {
    for (int b = 0; b < kHistogramBins; ++b)
      if (counts[cls][b] > 0)
        svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" "
                           "fill-opacity=\"0.55\"><title>{}: {}</title></rect>",
                           kLeft + bw * b, kTop + ph * (1 - counts[cls][b] / top), bw, ph * counts[cls][b] / top,
                           kColors[cls], escape(r.labels[cls]), counts[cls][b]);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"{}\"/><text class=\"legend\" "
                       "x=\"{:.1f}\" y=\"{:.1f}\">reference {}</text>",
                       kLeft + 8, kTop + 6 + 14.0 * cls, kColors[cls], kLeft + 22, kTop + 15 + 14.0 * cls,
                       escape(r.labels[cls]));
  }
  svg += fmt::format("<text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">score of {}</text>",
                     kLeft + pw / 2, kHeight - 8, escape(r.labels[1]));
  return svg;
}

// Series named after the metrics.jsonl keys, by step.
Series log_series(const std::vector<json>& log, const std::string& key) {
  Series s{key, {}, {}};
  for (const json& rec : log)
    if (rec.contains(key) && rec[key].is_number() && rec.contains("step") && rec["step"].is_number()) {
      s.x.push_back(rec["step"].get<double>());
      s.y.push_back(rec[key].get<double>());
    }
  return s;
}

std::string training_figures(const std::vector<json>& log) {
  std::string out;
  std::vector<Series> loss;
  for (const char* k : {"loss", "eval_loss"})
    if (Series s = log_series(log, k); !s.x.empty()) loss.push_back(std::move(s));
  if (!loss.empty()) out += figure("training-loss", "Training and eval loss", line_chart(loss, "step", "loss", false));
  std::vector<Series> eval;
  for (const char* k : {"eval_accuracy", "eval_f1_macro", "eval_f1_micro", "eval_subset_accuracy"})
    if (Series s = log_series(log, k); !s.x.empty()) eval.push_back(std::move(s));
  if (!eval.empty()) out += figure("eval-metrics", "Eval metrics", line_chart(eval, "step", "score", true));
  if (Series lr = log_series(log, "learning_rate"); !lr.x.empty())
    out += figure("learning-rate", "Learning rate", line_chart({lr}, "step", "learning rate", false));
  return out;
}

constexpr const char* kStyle = R"(body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}figcaption{font-weight:600;margin-bottom:4px}
svg .plot{fill:#fafafa;stroke:#999}svg .grid{stroke:#e4e4e4}svg .tick,svg .legend,svg .count{font-size:11px;fill:#333}
svg .count.dark{fill:#fff}svg .label{font-size:12px;fill:#222})";

std::string md_cell(std::string_view s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::string html_report(const Report& r, const std::vector<json>& training_log, const std::string& title) {
  std::string body = fmt::format("<h1>{}</h1>\n<p>{} samples, {} labels ({})</p>\n<h2>Metrics</h2>\n<table id=\"metrics\">"
                                 "<tr><th>metric</th><th>value</th></tr>",
                                 escape(title), r.num_samples, r.labels.size(),
                                 r.task == Task::kSingleLabel ? "single-label" : "multi-label");
  for (const auto& [name, v] : r.scalars) body += fmt::format("<tr><td>{}</td><td>{:.4f}</td></tr>", name, v);
  body += "</table>\n<h2>Per class</h2>\n<table id=\"per-class\"><tr><th>label</th><th>precision</th><th>recall</th>"
          "<th>F1</th><th>support</th></tr>";
  for (const ClassScores& s : r.per_class)
    body += fmt::format("<tr><td>{}</td><td>{:.4f}</td><td>{:.4f}</td><td>{:.4f}</td><td>{}</td></tr>", escape(s.label),
                        s.precision, s.recall, s.f1, s.support);
  body += "</table>\n<h2>Charts</h2>\n";
  if (r.task == Task::kSingleLabel) {
    double w = 0, h = 0;
    const std::string cm = confusion_svg(r, w, h);
    body += figure("confusion-matrix", "Confusion matrix (shade: share of the reference row)", cm, w, h);
  }
  double bw = 0;
  const std::string bars = class_bars_svg(r, bw);
  body += figure("per-class-bars", "Precision, recall and F1 per class", bars, bw);
  if (!r.positive_scores.empty()) {
    const Curve roc = roc_curve(r.positive_scores, r.positive_truth), pr = pr_curve(r.positive_scores, r.positive_truth);
    const auto auc = r.value("roc_auc"), ap = r.value("average_precision");
    body += figure("roc-curve", auc ? fmt::format("ROC curve (AUC {:.4f})", *auc) : "ROC curve",
                   line_chart({{"ROC", roc.x, roc.y}, {"chance", {0, 1}, {0, 1}}}, "false positive rate",
                              "true positive rate", true, true));
    body += figure("pr-curve", ap ? fmt::format("Precision-recall curve (AP {:.4f})", *ap) : "Precision-recall curve",
                   line_chart({{"precision-recall", pr.x, pr.y}}, "recall", "precision", true, true));
    body += figure("score-histogram", "Score histogram by reference class", histogram_svg(r));
  }
  if (!training_log.empty()) body += "<h2>Training</h2>\n" + training_figures(training_log);
  return fmt::format("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style>"
                     "</head><body>\n{}</body></html>\n",
                     escape(title), kStyle, body);
}

std::string markdown_report(const Report& r, const std::vector<json>& training_log) {
  std::string out = fmt::format("## Evaluation\n\n{} samples, {} labels\n\n| metric | value |\n|---|---:|\n", r.num_samples,
                                r.labels.size());
  for (const auto& [name, v] : r.scalars) out += fmt::format("| {} | {:.4f} |\n", name, v);
  out += "\n| label | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|\n";
  for (const ClassScores& s : r.per_class)
    out += fmt::format("| {} | {:.4f} | {:.4f} | {:.4f} | {} |\n", md_cell(s.label), s.precision, s.recall, s.f1, s.support);
  if (r.task == Task::kSingleLabel) {
    out += "\nConfusion matrix (rows: reference, columns: prediction)\n\n| |";
    for (const std::string& l : r.labels) out += " " + md_cell(l) + " |";
    out += "\n|---|";
    for (std::size_t i = 0; i < r.labels.size(); ++i) out += "---:|";
    out += "\n";
    for (std::size_t i = 0; i < r.labels.size(); ++i) {
      out += "| " + md_cell(r.labels[i]) + " |";
      for (std::int64_t v : r.confusion_matrix[i]) out += fmt::format(" {} |", v);
      out += "\n";
    }
  }
  // The last eval of a training log, for the job summary's "how did the run end".
  for (auto it = training_log.rbegin(); it != training_log.rend(); ++it)
    if (it->contains("eval_loss")) {
      out += fmt::format("\nLast training eval (step {}):", it->value("step", 0));
      for (const auto& [k, v] : it->items())
        if (k.starts_with("eval_") && v.is_number() && !k.ends_with("per_second") && k != "eval_runtime")
          out += fmt::format(" {} {:.4f};", k, v.get<double>());
      out.back() = '\n';
      break;
    }
  return out;
}

void check_report_path(const std::string& path) {
  if (!path.ends_with(".html") && !path.ends_with(".htm") && !path.ends_with(".md"))
    throw Error(ErrorKind::kUsage, fmt::format("--report {}: expected a .html, .htm or .md file name", path));
}

void write_report(const std::string& path, const Report& r, const std::string& training_log) {
  std::vector<json> log;
  if (!training_log.empty())
    for (io::Record& rec : io::read_all(training_log, io::Format::kJsonl)) log.push_back(json::parse(rec.value.dump()));
  write_file_atomic(path, path.ends_with(".md") ? markdown_report(r, log) : html_report(r, log, "hf-eval report"));
}

}  // namespace hf::metrics
