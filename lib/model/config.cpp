// config.json -> the family's config, dispatched on "model_type" (the table below), and HF
// BertConfig <-> config.json (https://huggingface.co/docs/transformers/model_doc/bert#transformers.BertConfig).
// Unknown keys ride along in `extra`; id2label decides num_labels, as in PreTrainedConfig.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "model/families.h"

namespace hf::model {
namespace {

// Keys to_json() always writes itself (so a stale copy in `extra` must not override them).
const char* const kRegenerated[] = {"architectures", "model_type", "id2label", "label2id", "num_labels",
                                    "dtype", "torch_dtype", "problem_type", "transformers_version"};

// The families hfkit builds, by config.json "model_type".
struct Family {
  std::string_view model_type;
  std::unique_ptr<ModelConfig> (*parse)(const Json&, const std::string&);
};
const Family kFamilies[] = {{"bert", parse_bert},        {"distilbert", parse_distilbert},
                            {"roberta", parse_roberta},  {"xlm-roberta", parse_roberta},
                            {"electra", parse_electra},
                            {"deberta-v2", parse_deberta_v2}, {"modernbert", parse_modernbert}};
// Encoder families users ask for that are not built yet: refused by name.
const std::string_view kNotYet[] = {"deberta"};

std::string supported_families() {
  std::vector<std::string_view> names;
  for (const Family& f : kFamilies) names.push_back(f.model_type);
  return fmt::format("{}", fmt::join(names, ", "));
}

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

void ModelConfig::set_num_labels(std::int64_t n) {
  id2label.clear();
  for (std::int64_t i = 0; i < n; ++i) id2label.push_back(fmt::format("LABEL_{}", i));
}

void read_common(ConfigReader& r, ModelConfig& c) {
  r.get("vocab_size", c.vocab_size);
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("initializer_range", c.initializer_range);
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
}

void finish_common(ConfigReader& r, ModelConfig& c, std::initializer_list<std::pair<const char*, std::int64_t>> sizes) {
  for (auto [key, v] : {std::pair{"vocab_size", c.vocab_size}, {"max_position_embeddings", c.max_position_embeddings}})
    if (v < 1) r.fail(key, "must be at least 1");
  for (auto [key, v] : sizes)
    if (v < 1) r.fail(key, "must be at least 1");
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size) r.fail("pad_token_id", "outside the vocabulary");
  if (c.problem_type == ProblemType::kSingleLabelClassification && c.num_labels() == 1)
    r.fail("problem_type", "single_label_classification needs at least 2 labels (1 label means regression)");
  for (const auto& [k, v] : r.json().items()) {
    const bool regenerated = std::find_if(std::begin(kRegenerated), std::end(kRegenerated),
                                          [&](const char* x) { return k == x; }) != std::end(kRegenerated);
    if (!regenerated && !r.seen(k)) c.extra[k] = v;
  }
}

nlohmann::json common_json(const ModelConfig& c, std::string_view architecture) {
  nlohmann::json j = nlohmann::json(c.extra);  // std::map-backed: keys come out sorted, as HF writes them
  j["architectures"] = {architecture};
  j["model_type"] = c.model_type;
  j["dtype"] = "float32";
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["pad_token_id"] = c.pad_token_id;
  nlohmann::json id2l = nlohmann::json::object(), l2id = nlohmann::json::object();
  for (std::size_t i = 0; i < c.id2label.size(); ++i) {
    id2l[std::to_string(i)] = c.id2label[i];
    l2id[c.id2label[i]] = i;
  }
  j["id2label"] = std::move(id2l);
  j["label2id"] = std::move(l2id);
  if (c.problem_type) j["problem_type"] = std::string(to_string(*c.problem_type));
  return j;
}

std::unique_ptr<ModelConfig> ModelConfig::from_json(const Json& j, const std::string& source) {
  if (!j.is_object()) throw Error(ErrorKind::kConfig, fmt::format("{}: expected a JSON object", source));
  ConfigReader r(j, source);
  std::string model_type = "bert";  // configs older than model_type were BERTs
  r.get("model_type", model_type);
  for (const Family& f : kFamilies)
    if (f.model_type == model_type) return f.parse(j, source);
  const bool planned = std::find(std::begin(kNotYet), std::end(kNotYet), model_type) != std::end(kNotYet);
  r.fail("model_type", fmt::format("'{}' is not supported{} (supported: {})", model_type, planned ? " yet" : "",
                                   supported_families()));
}

std::unique_ptr<ModelConfig> ModelConfig::load(const std::string& path) {
  const std::string file =
      std::filesystem::is_directory(path) ? (std::filesystem::path(path) / "config.json").string() : path;
  const std::string text = read_file(file);
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error(ErrorKind::kConfig, fmt::format("{}: not valid JSON", file));
  return from_json(j, file);
}

void read_bert_fields(ConfigReader& r, BertConfig& c) {
  std::string position_embedding_type = "absolute";
  r.get("position_embedding_type", position_embedding_type);
  if (position_embedding_type != "absolute")
    r.fail("position_embedding_type", fmt::format("'{}' is not supported (only absolute)", position_embedding_type));
  if (const Json* d = r.find("is_decoder"); d && *d != false)
    r.fail("is_decoder", fmt::format("decoder {} models are not supported", c.model_type));
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
  r.get("type_vocab_size", c.type_vocab_size);
  r.get("layer_norm_eps", c.layer_norm_eps);
}

void check_bert_fields(ConfigReader& r, const BertConfig& c) {
  for (auto [key, v] : {std::pair{"hidden_size", c.hidden_size}, {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads}, {"intermediate_size", c.intermediate_size},
                        {"type_vocab_size", c.type_vocab_size}})
    if (v < 1) r.fail(key, "must be at least 1");
  if (c.hidden_size % c.num_attention_heads != 0)
    r.fail("num_attention_heads", fmt::format("hidden_size {} is not a multiple of {} heads", c.hidden_size,
                                              c.num_attention_heads));
  try {
    activation(c.hidden_act);
  } catch (const Error& e) {
    r.fail("hidden_act", e.what());
  }
}

BertConfig BertConfig::from_json(const Json& j, const std::string& source) {
  if (!j.is_object()) throw Error(ErrorKind::kConfig, fmt::format("{}: expected a JSON object", source));
  BertConfig c;
  ConfigReader r(j, source);
  r.get("model_type", c.model_type);
  if (c.model_type != "bert") r.fail("model_type", fmt::format("'{}' is not a BERT config", c.model_type));
  read_common(r, c);
  read_bert_fields(r, c);
  check_bert_fields(r, c);
  finish_common(r, c);
  return c;
}

BertConfig BertConfig::load(const std::string& path) {
  const std::string file =
      std::filesystem::is_directory(path) ? (std::filesystem::path(path) / "config.json").string() : path;
  Json j = Json::parse(read_file(file), nullptr, false);
  if (j.is_discarded()) throw Error(ErrorKind::kConfig, fmt::format("{}: not valid JSON", file));
  return from_json(j, file);
}

std::unique_ptr<ModelConfig> parse_bert(const Json& j, const std::string& source) {
  return std::make_unique<BertConfig>(BertConfig::from_json(j, source));
}

nlohmann::json BertConfig::sorted_json(std::string_view architecture) const {
  nlohmann::json j = common_json(*this, architecture);
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["classifier_dropout"] = classifier_dropout ? nlohmann::json(*classifier_dropout) : nlohmann::json();
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["position_embedding_type"] = "absolute";
  return j;
}

nlohmann::ordered_json BertConfig::to_json() const {
  return nlohmann::ordered_json(sorted_json("BertForSequenceClassification"));
}

}  // namespace hf::model
