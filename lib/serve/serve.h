// Deploy: hf-predict --serve (an HTTP/1.1 server over the batch mode's Predictor, with a dynamic
// batcher, Prometheus metrics and a small web page) and the versioned model registry that
// hf-registry publishes to and the server resolves from. The registry half links no libtorch.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "predict/predict.h"
#include "storage/storage.h"

namespace hf::serve {

// ---------------------------------------------------------------------------------------------
// The server

struct ServeOptions {
  // Model, input fields (JSON Lines requests), prediction field, --scores and predictor flags:
  // the batch mode's own options, so a served answer is the batch answer. `batch.model` may be a
  // registry reference (see resolve_model).
  predict::BatchOptions batch;
  std::string host = "127.0.0.1";
  int port = -1;  // -1: $SAGEMAKER_BIND_TO_PORT, else 8080; 0: any free port (logged)
  std::size_t max_batch_size = 32;     // texts per forward pass
  std::size_t max_batch_tokens = 8192; // estimated tokens per forward pass (padding included)
  int max_wait_ms = 5;                 // how long the first request of a batch waits for company
  std::size_t max_queue = 1024;        // texts waiting; beyond: 429 + Retry-After
  std::size_t max_body_bytes = 1 << 20;  // beyond: 413
  int http_threads = 2;                // I/O threads; each serves any number of connections
  double read_timeout_s = 10;          // a new connection's first byte, a whole header, each body read
  double write_timeout_s = 10;
  std::string api_key_file;            // "" = $HFKIT_API_KEY, or no key
  std::string cache_dir;               // where remote registry models are pulled ("" = XDG cache)
  storage::Options storage;            // for s3:// registries
  std::string version;                 // hfkit version and commit for GET /info (from lib/cli)
};

// Loads the model (serving /ping 503 meanwhile), serves until SIGTERM/SIGINT, then stops
// accepting, answers what is in flight and queued, and returns kOk. Throws Error(kUsage) for bad
// options, Error(kUnavailable) when the address cannot be bound, and what Predictor throws.
Outcome run_server(const ServeOptions& options);

// ---------------------------------------------------------------------------------------------
// The registry: REGISTRY/<name>/<version>/{model files, manifest.json} and REGISTRY/<name>/latest
// (a small file holding the newest version's name), written after the version is complete.

inline constexpr const char* kLatestFile = "latest";
inline constexpr const char* kManifestFile = "manifest.json";

struct PublishOptions {
  std::string registry;    // path, file:// or s3:// URL
  std::string name;        // model name: [A-Za-z0-9._-]+
  std::string version;     // "" = UTC timestamp "YYYYMMDD-HHMMSS"
  std::string model_dir;   // the trained model directory (config.json, weights, tokenizer)
  std::string dataset_dir; // hf-preprocess output (dataset.json: data and tokenizer sha256); optional
  std::string metrics;     // hf-eval JSON output (eval metrics); optional
  std::string parent;      // the model it was fine-tuned from; optional
  storage::Options storage;
  std::string hfkit_version, git_commit;  // lineage (from lib/cli's build info)
};

// Uploads the model directory and its manifest to REGISTRY/<name>/<version>/, then writes
// REGISTRY/<name>/latest. Prints the published reference (REGISTRY/<name>@<version>) on `out`.
// Throws Error(kUsage) on a bad name or version, Error(kCantCreate) when the version already
// exists (versions are immutable), Error(kNoInput) when the model directory is incomplete.
Outcome publish(const PublishOptions& options, std::ostream& out);

struct ModelRef {
  std::string registry;  // as given
  std::string name;
  std::string version;   // resolved (never "latest")
};

// "REGISTRY/<name>@<version>" or "REGISTRY/<name>[@latest]" (latest: when REGISTRY/<name>/latest
// exists) -> the reference, or nullopt when `text` is a plain model directory. Throws
// Error(kNoInput) when a named version or the latest file is missing.
std::optional<ModelRef> parse_model_ref(std::string_view text, const storage::Options& storage);

// The local model directory for `model` (a directory, or a registry reference pulled into
// `cache_dir`, "" = $XDG_CACHE_HOME/hfkit/models). Throws like parse_model_ref and pull().
std::string resolve_model(const std::string& model, const std::string& cache_dir,
                          const storage::Options& storage);

}  // namespace hf::serve
