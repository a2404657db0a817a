// Internal to lib/model: the config.json reader every family's parser uses, and each family's
// parser. Adding a family = one .cpp defining parse_<family> + one line in config.cpp's table.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/bert.h"

namespace hf::model {

using Json = nlohmann::ordered_json;

// Reads typed fields of one config.json, remembering which keys it read (the rest go to `extra`).
class ConfigReader {
 public:
  ConfigReader(const Json& j, const std::string& source) : j_(j), source_(source) {}

  template <typename T>
  void get(const char* key, T& out) {
    seen_.push_back(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    const bool ok = std::is_same_v<T, std::string> ? it->is_string()
                    : std::is_same_v<T, bool>      ? it->is_boolean()
                    : std::is_integral_v<T>        ? it->is_number_integer()
                                                   : it->is_number();
    if (!ok) fail(key, fmt::format("expected {}, got {}", kind<T>(), it->dump()));
    out = it->template get<T>();
  }
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
    throw Error(ErrorKind::kConfig, Where{source_, 0, key}, msg);
  }
  const Json* find(const char* key) {
    seen_.push_back(key);
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool seen(const std::string& key) const { return std::find(seen_.begin(), seen_.end(), key) != seen_.end(); }
  const Json& json() const { return j_; }

 private:
  template <typename T>
  static const char* kind() {
    return std::is_same_v<T, std::string> ? "a string"
           : std::is_same_v<T, bool>      ? "true or false"
           : std::is_integral_v<T>        ? "an integer"
                                          : "a number";
  }
  const Json& j_;
  const std::string& source_;
  std::vector<std::string> seen_;
};

// The ModelConfig fields every family names alike: vocab_size, max_position_embeddings,
// initializer_range, pad_token_id, id2label (or num_labels), problem_type.
void read_common(ConfigReader& r, ModelConfig& c);
// After all reads: checks the common fields (and `sizes`, each at least 1), then keeps every key
// nobody read in c.extra.
void finish_common(ConfigReader& r, ModelConfig& c,
                   std::initializer_list<std::pair<const char*, std::int64_t>> sizes = {});
// config.json's common part, sorted as HF writes it: extra, model_type, architectures, dtype,
// id2label/label2id, problem_type, vocab_size, max_position_embeddings, initializer_range,
// pad_token_id.
nlohmann::json common_json(const ModelConfig& c, std::string_view architecture);

// BERT's own keys (hidden_size ... layer_norm_eps, type_vocab_size) and their checks, which
// RoBERTa and ELECTRA configs share.
void read_bert_fields(ConfigReader& r, BertConfig& c);
void check_bert_fields(ConfigReader& r, const BertConfig& c);

// One parser per family: the config of model_type `j["model_type"]`, or Error(kConfig).
std::unique_ptr<ModelConfig> parse_bert(const Json& j, const std::string& source);
std::unique_ptr<ModelConfig> parse_roberta(const Json& j, const std::string& source);  // roberta, xlm-roberta
std::unique_ptr<ModelConfig> parse_distilbert(const Json& j, const std::string& source);
std::unique_ptr<ModelConfig> parse_electra(const Json& j, const std::string& source);
std::unique_ptr<ModelConfig> parse_deberta_v2(const Json& j, const std::string& source);
std::unique_ptr<ModelConfig> parse_modernbert(const Json& j, const std::string& source);

}  // namespace hf::model
