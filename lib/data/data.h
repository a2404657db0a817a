// Tokenized datasets: the on-disk format hf-preprocess writes and hf-train reads (mmap), the
// deterministic split/dedupe logic, and the preprocess pipeline itself.
//
// Format (version 1), one safetensors file per split, `<split>.safetensors`:
//   input_ids       I32 [total_tokens]   all examples concatenated
//   offsets         I64 [N + 1]          example i is input_ids[offsets[i] : offsets[i+1]]
//   token_type_ids  I32 [total_tokens]   only for text pairs
//   labels          I64 [N]  (single-label: index into label names)
//                or F32 [N, K] (multi-label: multi-hot)
//   __metadata__    hfkit_format "1", labels (JSON list), multi_label "true"/"false",
//                   tokenizer_sha256, source_sha256, max_length, split, count, run_id
// plus `dataset.json`, a manifest of the splits, labels, counts and the same run_id. hf-preprocess
// writes the directory as one unit (core/file.h AtomicDir); run_id (a digest of the inputs,
// tokenizer and options: runs that differ in any get different ids) lets a reader refuse splits of
// different runs mixed by hand or by an older, non-atomic writer (check_same_run). Datasets
// written before run_id existed have none.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace hf::data {

inline constexpr int kFormatVersion = 1;

// "train=0.8,validation=0.1,test=0.1" -> ordered (name, fraction) pairs; fractions must be >= 0 and
// sum to 1 (±1e-6). Throws Error(kUsage) naming the bad part.
std::vector<std::pair<std::string, double>> parse_split_spec(const std::string& spec);

// Deterministic split assignment: a seeded Fisher–Yates shuffle (mt19937_64, so the result is the
// same on every platform), then consecutive ranges sized by largest remainder. With `strata`
// (one stratum id per example) each stratum is split on its own, so label proportions are kept.
// Returns the split index of every example.
std::vector<int> assign_splits(std::size_t n, const std::vector<double>& fractions, std::uint64_t seed,
                               const std::vector<int>* strata = nullptr);

// One split being built in memory.
struct SplitData {
  std::vector<std::int32_t> input_ids;
  std::vector<std::int64_t> offsets{0};
  std::vector<std::int32_t> token_type_ids;  // empty unless pairs
  std::vector<std::int64_t> labels;          // single-label
  std::vector<float> multi_hot;              // multi-label, N * num_labels
  std::size_t size() const { return offsets.size() - 1; }
};

struct DatasetMeta {
  std::vector<std::string> label_names;  // empty: unlabelled
  bool multi_label = false;
  bool has_pairs = false;
  std::string tokenizer_sha256;
  std::string source_sha256;
  std::size_t max_length = 0;  // 0: no truncation
  std::string run_id;          // empty in datasets written before run ids
};

// Writes `<dir>/<split>.safetensors` atomically. Throws Error(kCantCreate/kIo).
void write_split(const std::string& dir, const std::string& split, const SplitData& data,
                 const DatasetMeta& meta);

// A split opened read-only through mmap; examples are views into the file. Thread-safe for
// concurrent reads.
class Dataset {
 public:
  // Throws Error(kNoInput) when missing, Error(kDataErr) when it is not a valid hfkit dataset.
  static Dataset open(const std::string& dir, const std::string& split);
  ~Dataset();
  Dataset(Dataset&&) noexcept;
  Dataset& operator=(Dataset&&) noexcept;

  std::size_t size() const;
  std::span<const std::int32_t> input_ids(std::size_t i) const;
  std::span<const std::int32_t> token_type_ids(std::size_t i) const;  // empty when no pairs
  std::int64_t label(std::size_t i) const;                             // single-label
  std::span<const float> multi_hot(std::size_t i) const;               // multi-label
  const DatasetMeta& meta() const;
  // The split's file, for messages.
  const std::string& path() const;

 private:
  struct Impl;
  explicit Dataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Requires that `splits` (e.g. train and validation, opened by hf-train) come from one
// hf-preprocess run: the same run_id, or — for datasets older than run ids, none of which has
// one — the same tokenizer_sha256 and source_sha256. Throws Error(kDataErr) naming the two split
// files that differ. Fewer than two splits always pass.
void check_same_run(std::span<const Dataset* const> splits);

// What hf-preprocess does; the options mirror its flags (see tools/hf-preprocess/README.md).
struct PreprocessOptions {
  std::string tokenizer;
  std::vector<std::string> inputs{"-"};
  std::string output;                  // a directory, or "-" for JSONL on stdout
  std::string format = "auto";         // auto|jsonl|csv|tsv|lines
  std::string text_field = "text";
  std::string text_pair_field;         // empty: single texts
  std::string label_field = "label";   // empty: unlabelled
  std::vector<std::string> labels;     // fixed label list; empty: discovered and sorted
  std::string split = "train=0.8,validation=0.1,test=0.1";
  bool stratify = false;
  bool dedupe = false;
  std::uint64_t seed = 42;
  std::size_t max_length = 0;
  std::string truncation = "longest_first";
  int threads = 0;                     // 0: the CPUs this process may run on (default_thread_count)
  std::string on_bad_record = "error";  // error|skip
};

// Runs the pipeline. A stop signal (core/signals.h) ends it promptly with nothing written and
// Outcome::kOk (the run wrapper exits 128+N). Throws hf::Error.
Outcome preprocess(const PreprocessOptions& options);

}  // namespace hf::data
