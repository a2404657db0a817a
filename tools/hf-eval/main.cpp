// hf-eval: classification metrics from predictions JSONL (JSON on stdout, a table on stderr), and
// the pipeline gate: --fail-under / --fail-over exit 1 naming the metric that missed.
#include <fmt/format.h>

#include <cstdio>

#include "cli/cli.h"
#include "core/log.h"
#include "core/signals.h"
#include "metrics/metrics.h"

namespace {

hf::Outcome run(const hf::metrics::EvalOptions& o) {
  const hf::metrics::EvalResult result = hf::metrics::evaluate(o);
  std::fputs((result.to_json().dump(2) + "\n").c_str(), stdout);
  hf::log::info("{} samples\n{}", result.report.num_samples, hf::metrics::format_table(result.report));
  for (const hf::metrics::GateResult& g : result.gates) {
    const char* op = g.gate.kind == hf::metrics::GateKind::kFailUnder ? "<" : ">";
    if (!g.passed) hf::log::error("gate failed: {} = {:.6g} {} {}", g.gate.metric, g.value, op, g.gate.threshold);
  }
  return result.passed() ? hf::Outcome::kOk : hf::Outcome::kNo;
}

}  // namespace

int main(int argc, char** argv) {
  hf::metrics::EvalOptions o;
  hf::cli::Tool tool("hf-eval",
                     "Score predictions JSONL as scikit-learn does (accuracy, precision/recall/F1 per class and\n"
                     "macro/micro/weighted, confusion matrix, log loss; multi-label subset accuracy, hamming loss)\n"
                     "and gate a pipeline on them. Metrics: " +
                         fmt::format("{}", fmt::join(hf::metrics::metric_names(), ", ")) + ".",
                     "  hf-predict --model run/ < test.jsonl | hf-eval --fail-under accuracy=0.9\n"
                     "  hf-eval --predictions preds.jsonl --references test.jsonl --id-field id\n"
                     "  hf-eval --predictions preds.jsonl --fail-under f1_macro=0.8 --fail-over log_loss=0.5\n"
                     "  hf-eval --predictions preds.jsonl --report report.html --training-log run/metrics.jsonl");
  auto& app = tool.app();
  app.add_option("-p,--predictions", o.predictions, "Predictions JSONL ('-' = stdin)");
  app.add_option("-r,--references", o.references,
                 "References JSONL (default: the reference field of the predictions themselves)");
  app.add_option("--id-field", o.id_field, "Join predictions and references by this field (default: by line)");
  app.add_option("--prediction-field", o.prediction_field, "Field holding the predicted label (or list of labels)");
  app.add_option("--reference-field", o.reference_field, "Field holding the reference label (or list of labels)");
  app.add_option("--scores-field", o.scores_field, "Field holding {label: probability}, for log_loss");
  app.add_option("--labels", o.labels, "Fixed label set and order (default: sorted union of all labels)")
      ->delimiter(',');
  app.add_option("--fail-under", o.fail_under, "Exit 1 when a metric is below its threshold, e.g. accuracy=0.85,f1_macro=0.8")
      ->envname("HFKIT_FAIL_UNDER");
  app.add_option("--fail-over", o.fail_over, "Exit 1 when a lower-is-better metric is above, e.g. log_loss=0.5");
  app.add_option("--report", o.report, "Also write a report: FILE.html (self-contained charts) or FILE.md (tables)");
  app.add_option("--training-log", o.training_log, "hf-train's metrics.jsonl: training curves in the HTML report");
  // A stop signal while reading ends the run before anything is printed (exit 128+N).
  hf::cli::exit_now(tool.run(argc, argv, [&] { return hf::stoppable([&] { return run(o); }, hf::Outcome::kOk); }));
}
