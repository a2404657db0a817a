// What hf-train checks in a dataset before training on it (beyond lib/data's check that its splits
// come from one hf-preprocess run): every token id has an embedding in the model (an id outside
// the vocabulary would otherwise surface as a libtorch index error deep in the first step).
#include <fmt/format.h>

#include "core/error.h"
#include "data/data.h"
#include "train/train.h"

namespace hf::train {

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
