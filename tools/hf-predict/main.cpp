// hf-predict: predictions JSONL from a fine-tuned HF model directory, one object per input record
// in input order, every input field passed through (batch mode; --serve comes later).
#include "cli/cli.h"
#include "predict/predict.h"

int main(int argc, char** argv) {
  hf::predict::BatchOptions o;
  hf::cli::Tool tool("hf-predict",
                     "Classify text with a fine-tuned BERT model directory (HF layout). Writes one JSON object per\n"
                     "input record, in input order: the input's fields plus \"prediction\", \"score\" and, with\n"
                     "--scores, \"scores\" ({label: probability}) — the fields hf-eval reads.",
                     "  hf-predict --model run/ < test.jsonl > predictions.jsonl\n"
                     "  hf-predict --model run/ --input test.jsonl | hf-eval --fail-under accuracy=0.9\n"
                     "  hf-predict --model run/ --format lines --input texts.txt --scores --output preds.jsonl\n"
                     "  hf-predict --model nli/ --text-field premise --text-pair-field hypothesis < pairs.jsonl\n"
                     "  hf-predict --model tags/ --threshold 0.4,spam=0.8 < posts.jsonl");
  auto& app = tool.app();
  auto& p = o.predictor;
  tool.require(app.add_option("-m,--model", o.model, "Model directory (config.json, model.safetensors, tokenizer)")
                   ->envname("HFKIT_MODEL"));
  app.add_option("-i,--input", o.input, "Input file ('-' = stdin)");
  app.add_option("-o,--output", o.output, "Output file, written atomically ('-' = stdout)");
  app.add_option("--format", o.format, "Input format: JSON Lines, or one text per line")
      ->check(CLI::IsMember({"jsonl", "lines"}));
  app.add_option("--text-field", o.text_field, "JSONL field holding the text");
  app.add_option("--text-pair-field", o.text_pair_field, "JSONL field holding the second text of a pair (optional)");
  app.add_option("--batch-size", p.batch_size, "Texts per forward pass (sorted by length, padded to the longest)")
      ->check(CLI::PositiveNumber);
  app.add_option("-t,--threads", p.threads, "Threads for tokenization and torch (0 = all cores)")
      ->envname("HFKIT_THREADS");
  app.add_option("--max-length", p.max_length,
                 "Truncate texts to this many tokens incl. special tokens (0 = the model's max_position_embeddings)");
  app.add_option("--prediction-field", o.prediction_field,
                 "Field of the predicted label (an input field 'label' is the reference; it passes through)");
  app.add_flag("--scores", o.scores, "Add \"scores\": the probability of every label");
  app.add_option("--threshold", p.threshold,
                 "Multi-label decision threshold: 0.5, or per label a=0.3,b=0.7 (a bare number is the default)");
  app.add_option("--device", p.device, "auto, cpu, cuda or cuda:N")->envname("HFKIT_DEVICE");
  app.add_option("--on-bad-record", o.on_bad_record, "What a malformed record does (skip: warn, count, leave it out)")
      ->check(CLI::IsMember({"error", "skip"}));
  return tool.run(argc, argv, [&] { return hf::predict::run_batch(o); });
}
