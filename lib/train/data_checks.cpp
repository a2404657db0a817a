// What hf-train checks in a dataset before training on it: that its splits come from one
// hf-preprocess run, and that every token id has an embedding in the model (an id outside the
// vocabulary would otherwise surface as a libtorch index error deep in the first step).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "data/data.h"
#include "train/train.h"

namespace hf::train {

void check_same_preprocess_run(const data::DatasetMeta& train, const std::string& train_file,
                               const data::DatasetMeta& eval, const std::string& eval_file) {
  // What one run writes into every split's __metadata__ (a re-run that failed half-way leaves the
  // new files beside the old ones).
  auto differ = [&](const char* field, const auto& a, const auto& b) {
    if (a == b) return;
    throw Error(ErrorKind::kDataErr, Where{eval_file, 0, field},
                fmt::format("'{}' here but '{}' in {}: the splits come from different hf-preprocess runs; "
                            "rerun hf-preprocess for the whole dataset",
                            b, a, train_file));
  };
  differ("source_sha256", train.source_sha256, eval.source_sha256);
  differ("tokenizer_sha256", train.tokenizer_sha256, eval.tokenizer_sha256);
  differ("max_length", train.max_length, eval.max_length);
  differ("labels", fmt::format("[{}]", fmt::join(train.label_names, ", ")),
         fmt::format("[{}]", fmt::join(eval.label_names, ", ")));
  differ("multi_label", train.multi_label, eval.multi_label);
  differ("has_pairs", train.has_pairs, eval.has_pairs);
}

void check_token_ids(const data::Dataset& dataset, const std::string& file, std::int64_t vocab_size,
                     std::int64_t type_vocab_size) {
  auto check = [&](std::size_t i, std::span<const std::int32_t> ids, const char* field, std::int64_t size,
                   const char* size_name) {
    for (const std::int32_t id : ids)
      if (id < 0 || id >= size)
        throw Error(ErrorKind::kDataErr, Where{file, 0, field},
                    fmt::format("example {} holds id {}, outside the model's {} ({}): preprocessed with another "
                                "tokenizer?",
                                i, id, size_name, size));
  };
  for (std::size_t i = 0; i < dataset.size(); ++i) {
    check(i, dataset.input_ids(i), "input_ids", vocab_size, "vocab_size");
    check(i, dataset.token_type_ids(i), "token_type_ids", type_vocab_size, "type_vocab_size");
  }
}

}  // namespace hf::train
