// HF BertConfig <-> config.json (https://huggingface.co/docs/transformers/model_doc/bert#transformers.BertConfig).
// Unknown keys ride along in `extra`; id2label decides num_labels, as in PreTrainedConfig.
#include <fmt/format.h>

#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "model/model.h"

namespace hf::model {
namespace {

using Json = nlohmann::ordered_json;

// Keys to_json() always writes itself (so a stale copy in `extra` must not override them).
const char* const kRegenerated[] = {"architectures", "model_type", "id2label", "label2id", "num_labels",
                                    "dtype", "torch_dtype", "problem_type", "transformers_version"};

class Reader {
 public:
  Reader(const Json& j, const std::string& source) : j_(j), source_(source) {}

  template <typename T>
  void get(const char* key, T& out) {
    seen_.push_back(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    const bool ok = std::is_same_v<T, std::string> ? it->is_string()
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

 private:
  template <typename T>
  static const char* kind() {
    return std::is_same_v<T, std::string> ? "a string" : std::is_integral_v<T> ? "an integer" : "a number";
  }
  const Json& j_;
  const std::string& source_;
  std::vector<std::string> seen_;
};

}  // namespace

std::string_view to_string(ProblemType type) {
  switch (type) {
    case ProblemType::kSingleLabelClassification: return "single_label_classification";
    case ProblemType::kMultiLabelClassification: return "multi_label_classification";
    case ProblemType::kRegression: return "regression";
  }
  return "single_label_classification";
}

ProblemType parse_problem_type(std::string_view name) {
  for (ProblemType t : {ProblemType::kSingleLabelClassification, ProblemType::kMultiLabelClassification,
                        ProblemType::kRegression})
    if (to_string(t) == name) return t;
  throw Error(ErrorKind::kConfig, fmt::format("unknown problem_type '{}' (expected single_label_classification, "
                                               "multi_label_classification or regression)",
                                               name));
}

void BertConfig::set_num_labels(std::int64_t n) {
  id2label.clear();
  for (std::int64_t i = 0; i < n; ++i) id2label.push_back(fmt::format("LABEL_{}", i));
}

BertConfig BertConfig::from_json(const Json& j, const std::string& source) {
  if (!j.is_object()) throw Error(ErrorKind::kConfig, fmt::format("{}: expected a JSON object", source));
  BertConfig c;
  Reader r(j, source);
  std::string model_type = "bert", position_embedding_type = "absolute";
  r.get("model_type", model_type);
  if (model_type != "bert") r.fail("model_type", fmt::format("'{}' is not supported (only bert)", model_type));
  r.get("position_embedding_type", position_embedding_type);
  if (position_embedding_type != "absolute")
    r.fail("position_embedding_type", fmt::format("'{}' is not supported (only absolute)", position_embedding_type));
  if (const Json* d = r.find("is_decoder"); d && *d != false) r.fail("is_decoder", "decoder BERTs are not supported");
  r.get("vocab_size", c.vocab_size);
  r.get("hidden_size", c.hidden_size);
  r.get("num_hidden_layers", c.num_hidden_layers);
  r.get("num_attention_heads", c.num_attention_heads);
  r.get("intermediate_size", c.intermediate_size);
  r.get("hidden_act", c.hidden_act);
  r.get("hidden_dropout_prob", c.hidden_dropout_prob);
  r.get("attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  double classifier_dropout = -1;
  r.get("classifier_dropout", classifier_dropout);
  if (classifier_dropout >= 0) c.classifier_dropout = classifier_dropout;
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("type_vocab_size", c.type_vocab_size);
  r.get("initializer_range", c.initializer_range);
  r.get("layer_norm_eps", c.layer_norm_eps);
  r.get("pad_token_id", c.pad_token_id);

  if (const Json* id2label = r.find("id2label")) {
    if (!id2label->is_object() || id2label->empty()) r.fail("id2label", "expected a non-empty object {\"0\": name}");
    c.id2label.assign(id2label->size(), std::string());
    std::vector<bool> filled(id2label->size(), false);
    for (const auto& [k, v] : id2label->items()) {
      std::size_t pos = 0;
      long long id = -1;
      try {
        id = std::stoll(k, &pos);
      } catch (const std::exception&) {
      }
      if (pos != k.size() || id < 0 || id >= static_cast<long long>(filled.size()) || filled[id])
        r.fail("id2label", fmt::format("ids must be 0..{} without repeats, got '{}'", filled.size() - 1, k));
      if (!v.is_string()) r.fail("id2label", fmt::format("label {} is not a string", k));
      c.id2label[id] = v.get<std::string>();
      filled[id] = true;
    }
  } else {
    std::int64_t n = 2;  // HF's default head when a config has no id2label (e.g. a bare encoder)
    r.get("num_labels", n);
    if (n < 1) r.fail("num_labels", "must be at least 1");
    c.set_num_labels(n);
  }
  if (const Json* p = r.find("problem_type")) {
    if (!p->is_string()) r.fail("problem_type", "expected a string");
    try {
      c.problem_type = parse_problem_type(p->get<std::string>());
    } catch (const Error& e) {
      r.fail("problem_type", e.what());
    }
  }

  for (auto [key, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                        {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads},
                        {"intermediate_size", c.intermediate_size},
                        {"max_position_embeddings", c.max_position_embeddings},
                        {"type_vocab_size", c.type_vocab_size}})
    if (v < 1) r.fail(key, "must be at least 1");
  if (c.hidden_size % c.num_attention_heads != 0)
    r.fail("num_attention_heads", fmt::format("hidden_size {} is not a multiple of {} heads", c.hidden_size,
                                              c.num_attention_heads));
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size) r.fail("pad_token_id", "outside the vocabulary");
  try {
    activation(c.hidden_act);
  } catch (const Error& e) {
    r.fail("hidden_act", e.what());
  }
  if (c.problem_type == ProblemType::kSingleLabelClassification && c.num_labels() == 1)
    r.fail("problem_type", "single_label_classification needs at least 2 labels (1 label means regression)");

  for (const auto& [k, v] : j.items()) {
    const bool regenerated = std::find_if(std::begin(kRegenerated), std::end(kRegenerated),
                                          [&](const char* x) { return k == x; }) != std::end(kRegenerated);
    if (!regenerated && !r.seen(k)) c.extra[k] = v;
  }
  return c;
}

BertConfig BertConfig::load(const std::string& path) {
  const std::string file =
      std::filesystem::is_directory(path) ? (std::filesystem::path(path) / "config.json").string() : path;
  const std::string text = read_file(file);
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error(ErrorKind::kConfig, fmt::format("{}: not valid JSON", file));
  return from_json(j, file);
}

nlohmann::ordered_json BertConfig::to_json() const {
  nlohmann::json j = nlohmann::json(extra);  // std::map-backed: keys come out sorted, as HF writes them
  j["architectures"] = {"BertForSequenceClassification"};
  j["model_type"] = "bert";
  j["dtype"] = "float32";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["classifier_dropout"] = classifier_dropout ? nlohmann::json(*classifier_dropout) : nlohmann::json();
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["initializer_range"] = initializer_range;
  j["layer_norm_eps"] = layer_norm_eps;
  j["pad_token_id"] = pad_token_id;
  j["position_embedding_type"] = "absolute";
  nlohmann::json id2l = nlohmann::json::object(), l2id = nlohmann::json::object();
  for (std::size_t i = 0; i < id2label.size(); ++i) {
    id2l[std::to_string(i)] = id2label[i];
    l2id[id2label[i]] = i;
  }
  j["id2label"] = std::move(id2l);
  j["label2id"] = std::move(l2id);
  if (problem_type) j["problem_type"] = std::string(to_string(*problem_type));
  return nlohmann::ordered_json(j);
}

}  // namespace hf::model
