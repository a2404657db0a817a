// hf-train: fine-tune an HF encoder checkpoint (BERT, DistilBERT, RoBERTa, XLM-R, ELECTRA, DeBERTa-v2/v3,
// ModernBERT) on an hf-preprocess dataset (see README.md).
#include "cli/build_info.h"
#include "cli/cli.h"
#include "hub/hub.h"
#include "track/track.h"
#include "train/train.h"

namespace {

// A flag taking one of `table`'s spellings: --help lists them, and the value is parsed once, here.
template <class E, std::size_t N>
CLI::Option* add_choice(CLI::App& app, const std::string& flag, E& value, const hf::train::Spelling<E> (&table)[N],
                        const std::string& help) {
  return app
      .add_option_function<std::string>(
          flag, [&value, &table, flag](const std::string& s) { value = hf::train::parse_spelling(table, s, flag); }, help)
      ->check(CLI::IsMember(hf::train::spellings(table)))
      ->default_str(hf::train::spelling_of(table, value));
}

}  // namespace

int main(int argc, char** argv) {
  hf::train::TrainOptions o;
  bool greater_is_better = false;
  hf::cli::Tool tool("hf-train",
                     "Fine-tune a Hugging Face checkpoint (bert, distilbert, roberta, xlm-roberta, electra,\n"
                     "deberta-v2, modernbert) for sequence classification on a dataset written by hf-preprocess.\n"
                     "Options are HF TrainingArguments (flags with dashes, YAML keys with '_').\n"
                     "Checkpoints resume exactly; SIGTERM/SIGUSR1 save one and exit 75. --sync-to keeps a remote\n"
                     "copy (S3 or a path) of the checkpoints and the final model. Under torchrun-style or Slurm\n"
                     "environment variables, one process per device trains data-parallel (scripts/launch-local.sh).",
                     "  hf-train --model all-MiniLM-L6-v2/ --data data/ --output-dir run/ --resume auto\n"
                     "  hf-train --config configs/demo-sentiment.yaml --model M --data D --output-dir run/\n"
                     "  hf-train --config configs/tiny.yaml --model tiny/ --data D --output-dir run/ --max-steps 20\n"
                     "  hf-train --model M --data D --output-dir run/ --sync-to s3://bucket/runs/bert --resume auto\n"
                     "  hf-train --model sentence-transformers/all-MiniLM-L6-v2 --data D --output-dir run/\n"
                     "  scripts/launch-local.sh 2 -- hf-train --model M --data D --output-dir run/ --resume auto");
  auto& app = tool.app();
  tool.require(app.add_option("--model", o.model, "HF model directory (config.json, model.safetensors, tokenizer), or org/name[@revision] "
                                                 "from the HF cache or Hub (HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE)"));
  tool.require(app.add_option("--data", o.data, "Dataset directory written by hf-preprocess"));
  tool.require(app.add_option("--output-dir", o.output_dir, "Checkpoints, then the fine-tuned HF model directory"));
  app.add_option("--train-split", o.train_split, "Split to train on");
  app.add_option("--eval-split", o.eval_split, "Split to evaluate on");
  app.add_option("--learning-rate", o.learning_rate, "Peak learning rate of AdamW");
  app.add_option("--per-device-train-batch-size", o.per_device_train_batch_size, "Examples per micro-batch");
  app.add_option("--per-device-eval-batch-size", o.per_device_eval_batch_size, "Examples per eval batch");
  app.add_option("--gradient-accumulation-steps", o.gradient_accumulation_steps, "Micro-batches per optimizer step");
  app.add_option("--num-train-epochs", o.num_train_epochs, "Epochs (may be fractional)");
  app.add_option("--max-steps", o.max_steps, "Optimizer steps; > 0 overrides --num-train-epochs");
  app.add_option("--warmup-ratio", o.warmup_ratio, "Share of the steps with a linear warmup");
  app.add_option("--warmup-steps", o.warmup_steps, "Warmup steps; > 0 overrides --warmup-ratio");
  add_choice(app, "--lr-scheduler-type", o.lr_scheduler_type, hf::train::kSchedulerTypes, "Learning-rate schedule");
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay (never on biases and LayerNorm)");
  app.add_option("--max-grad-norm", o.max_grad_norm, "Clip the gradient norm to this (0 = no clipping)");
  app.add_option("--adam-beta1", o.adam_beta1, "AdamW beta1");
  app.add_option("--adam-beta2", o.adam_beta2, "AdamW beta2");
  app.add_option("--adam-epsilon", o.adam_epsilon, "AdamW epsilon");
  app.add_option("--seed", o.seed, "Seed of the head initialisation, dropout and data order")
      ->check(CLI::NonNegativeNumber);  // the unsigned conversion would wrap "-1"
  app.add_option("--logging-steps", o.logging_steps, "Log loss, lr, grad norm and throughput every N steps");
  add_choice(app, "--eval-strategy", o.eval_strategy, hf::train::kStrategies, "When to evaluate");
  app.add_option("--eval-steps", o.eval_steps, "Evaluate every N steps (0 = --logging-steps)");
  add_choice(app, "--save-strategy", o.save_strategy, hf::train::kStrategies, "When to checkpoint");
  app.add_option("--save-steps", o.save_steps, "Checkpoint every N steps");
  app.add_option("--save-total-limit", o.save_total_limit, "Keep at most N checkpoints (never the best, never the newest; 0 = all)");
  app.add_flag("--load-best-model-at-end", o.load_best_model_at_end, "Final model = the best checkpoint");
  app.add_option("--metric-for-best-model", o.metric_for_best_model, "Eval metric deciding the best checkpoint");
  // No default value: unset means "by the metric", which a saved config must not pin to false.
  auto* gib = app.add_option("--greater-is-better", greater_is_better,
                             "Whether a larger metric is better (default: false for *loss, else true)")
                  ->default_str("");
  app.add_option("--early-stopping-patience", o.early_stopping_patience, "Stop after N evaluations without improvement (0 = off)");
  app.add_option("--early-stopping-threshold", o.early_stopping_threshold, "Smallest change that counts as improvement");
  app.add_flag("--group-by-length", o.group_by_length, "Batch examples of similar length (less padding)");
  app.add_option("--dataloader-num-workers", o.dataloader_num_workers, "Threads building batches ahead (0 = inline)");
  app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N (bf16 autocast + TF32 on Ampere+)")->envname("HFKIT_DEVICE");
  app.add_option("-t,--threads", o.threads, "Torch intra-op threads (0 = torch's default)")->envname("HFKIT_THREADS");
  app.add_option("--resume", o.resume, "none, auto (newest complete checkpoint in --output-dir) or a checkpoint dir");
  app.add_flag("--overwrite-output-dir", o.overwrite_output_dir, "Delete checkpoints already in --output-dir");
  app.add_flag("--ignore-mismatched-sizes", o.ignore_mismatched_sizes,
               "Train a new head when the model's labels do not fit the data's");
  app.add_option("--sync-to", o.sync_to, "Upload checkpoints (background) and the final model to s3://bucket/prefix "
                                         "or a path; --resume auto also looks there")->envname("HFKIT_SYNC_TO");
  hf::cli::add_storage_options(app, o.storage);
  app.add_option("--report-to", o.report_to, "Where to log the run: none, tensorboard, mlflow or all (comma-separated; "
                                             "MLflow reads MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, MLFLOW_RUN_ID)")
      ->delimiter(',');
  app.add_option("--logging-dir", o.logging_dir, "TensorBoard directory (default: OUTPUT_DIR/runs/<date>_<host>, kept on resume)");
  app.add_option("--run-name", o.run_name, "MLflow run name (default: the output directory's name)");
  app.add_option("--ddp-backend", o.ddp_backend, "Data-parallel backend: gloo or nccl (default: nccl on CUDA, else gloo)")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  app.add_option("--ddp-timeout", o.ddp_timeout, "Seconds ranks wait for each other (rendezvous, lost rank)")
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level-replica", o.log_level_replica,
                 "Most that ranks other than 0 log: debug, info, warning, error, critical or passive (= --verbose/--quiet)")
      ->check(CLI::IsMember({"debug", "info", "warning", "error", "critical", "passive"}))
      ->capture_default_str();
  hf::cli::exit_now(tool.run(argc, argv, [&] {
    if (gib->count() > 0) o.greater_is_better = greater_is_better;
    hf::track::parse_report_to(o.report_to);  // a bad name fails before any work
    o.resolved_config_yaml = tool.resolved_config_yaml();
    o.model = hf::hub::resolve_model_arg(o.model);  // after the saved config, which keeps the name
    o.run_tags = {{"hfkit.version", hf::cli::kHfkitVersion}, {"hfkit.git_commit", hf::cli::kGitCommit}};
    return hf::train::train(o);
  }));
}
