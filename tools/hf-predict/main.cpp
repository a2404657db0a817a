// hf-predict: predictions JSONL from a fine-tuned HF model directory, one object per input record
// in input order, every input field passed through; or, with --serve, the same answers over HTTP.
#include "cli/build_info.h"
#include "cli/cli.h"
#include "hub/hub.h"
#include "predict/predict.h"
#include "serve/serve.h"

int main(int argc, char** argv) {
  hf::serve::ServeOptions s;
  hf::predict::BatchOptions& o = s.batch;
  bool serve = false;
  hf::cli::Tool tool("hf-predict",
                     "Classify text with a fine-tuned model directory (HF layout; bert, distilbert, roberta,\n"
                     "xlm-roberta, electra, deberta-v2, modernbert). Writes one JSON object per\n"
                     "input record, in input order: the input's fields plus \"prediction\", \"score\" and, with\n"
                     "--scores, \"scores\" ({label: probability}) — the fields hf-eval reads.",
                     "  hf-predict --model run/ < test.jsonl > predictions.jsonl\n"
                     "  hf-predict --model run/ --input test.jsonl | hf-eval --fail-under accuracy=0.9\n"
                     "  hf-predict --model run/ --format lines --input texts.txt --scores --output preds.jsonl\n"
                     "  hf-predict --model nli/ --text-field premise --text-pair-field hypothesis < pairs.jsonl\n"
                     "  hf-predict --model tags/ --threshold 0.4,spam=0.8 < posts.jsonl\n"
                     "  hf-predict --model run/ --quantize int8 --threads 2 < test.jsonl > predictions.jsonl\n"
                     "  hf-predict --model run/ --device cuda --dtype bfloat16 --batch-size 256 < big.jsonl > out.jsonl\n"
                     "  hf-predict --model run/ --serve --port 8080\n"
                     "  hf-predict --model org/name@main < texts.jsonl    (HF cache, downloaded when missing)\n"
                     "  hf-predict --model s3://bucket/models/sentiment@latest --serve");
  auto& app = tool.app();
  auto& p = o.predictor;
  tool.require(app.add_option("-m,--model", o.model,
                              "Model directory (config.json, model.safetensors, tokenizer), REGISTRY/NAME[@VERSION], "
                              "or a Hugging Face org/name[@revision] (HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, "
                              "HF_HUB_OFFLINE)")
                   ->envname("HFKIT_MODEL"));
  app.add_option("-i,--input", o.input, "Input file ('-' = stdin)");
  app.add_option("-o,--output", o.output, "Output file, written atomically ('-' = stdout)");
  app.add_option("--format", o.format, "Input format: JSON Lines, or one text per line")
      ->check(CLI::IsMember({"jsonl", "lines"}));
  app.add_option("--text-field", o.text_field, "JSONL field holding the text");
  app.add_option("--text-pair-field", o.text_pair_field, "JSONL field holding the second text of a pair (optional)");
  app.add_option("--batch-size", p.batch_size, "Texts per forward pass (sorted by length, padded to the longest)")
      ->check(CLI::PositiveNumber);
  app.add_option("-t,--threads", p.threads, "Threads for tokenization and torch (0 = the CPUs this process may use)")
      ->envname("HFKIT_THREADS");
  app.add_option("--parallel-batches", p.parallel_batches,
                 "CPU: batches run at once, each on an equal share of the threads (0 = auto: up to 4; 1 = one "
                 "batch over every thread)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-length", p.max_length,
                 "Truncate texts to this many tokens incl. special tokens (0 = the model's max_position_embeddings)");
  app.add_option("--prediction-field", o.prediction_field,
                 "Field of the predicted label (an input field 'label' is the reference; it passes through)");
  app.add_flag("--scores", o.scores, "Add \"scores\": the probability of every label");
  app.add_option("--threshold", p.threshold,
                 "Multi-label decision threshold: 0.5, or per label a=0.3,b=0.7 (a bare number is the default)");
  app.add_option("--quantize", p.quantize,
                 "none, or int8: dynamic int8 Linear layers in the encoder (CPU, fbgemm; faster, ~same labels)")
      ->check(CLI::IsMember({"none", "int8"}));
  app.add_option("--dtype", p.dtype,
                 "Weights and activations: auto (bfloat16 on a CUDA GPU with bf16 tensor cores, else float32), "
                 "float32, bfloat16 or float16")
      ->check(CLI::IsMember({"auto", "float32", "bfloat16", "float16"}));
  app.add_option("--device", p.device, "auto, cpu, cuda or cuda:N")->envname("HFKIT_DEVICE");
  app.add_option("--on-bad-record", o.on_bad_record, "What a malformed record does (skip: warn, count, leave it out)")
      ->check(CLI::IsMember({"error", "skip"}));
  app.add_option("--model-cache", s.cache_dir, "Where models from remote registries are pulled")
      ->envname("HFKIT_MODEL_CACHE");
  hf::cli::add_storage_options(app, s.storage);
  app.add_flag("--serve", serve, "Serve HTTP (/invocations, /predict, /ping, /health, /metrics, /info, /) until SIGTERM");
  app.add_option("--host", s.host, "Address to listen on (--serve)");
  app.add_option("--port", s.port, "Port (--serve; 0 = any free port; default $SAGEMAKER_BIND_TO_PORT or 8080)")
      ->envname("HFKIT_PORT")->check(CLI::Range(0, 65535));
  app.add_option("--max-batch-size", s.max_batch_size, "Texts per forward pass of the dynamic batcher")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-batch-tokens", s.max_batch_tokens, "Estimated tokens per forward pass")->check(CLI::PositiveNumber);
  app.add_option("--max-wait-ms", s.max_wait_ms, "How long a request waits for others to batch with")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-queue", s.max_queue, "Texts waiting at most; beyond, 429 + Retry-After")->check(CLI::PositiveNumber);
  app.add_option("--max-body-bytes", s.max_body_bytes, "Largest request body; beyond, 413")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--http-threads", s.http_threads, "I/O threads of --serve (each serves many connections)")->check(CLI::Range(1, 4096));
  app.add_option("--http-read-timeout", s.read_timeout_s, "Seconds a client may stay silent mid-request (--serve)")
      ->check(CLI::PositiveNumber);
  app.add_option("--http-write-timeout", s.write_timeout_s, "Seconds a client may take to read the answer (--serve)")
      ->check(CLI::PositiveNumber);
  app.add_option("--api-key-file", s.api_key_file,
                 "File holding the API key requests must send as 'Authorization: Bearer KEY' (else $HFKIT_API_KEY)");
  s.version = std::string(hf::cli::kHfkitVersion) + " (" + hf::cli::kGitCommit + ")";
  hf::cli::exit_now(tool.run(argc, argv, [&] {
    tool.set_stop_is_success(serve);
    o.model = hf::hub::resolve_model_arg(o.model);  // org/name[@rev] -> HF cache snapshot
    if (serve) return hf::serve::run_server(s);
    o.model = hf::serve::resolve_model(o.model, s.cache_dir, s.storage);
    return hf::predict::run_batch(o);
  }));
}
