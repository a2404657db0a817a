// Request parsing and response shaping for the inference routes.
#include "serve/api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace hf::serve {
namespace {

using Json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& message) { throw Error(ErrorKind::kDataErr, message); }

// nlohmann's parser with a nesting bound: deeper documents are refused before they are built.
Json parse_bounded(std::string_view text, const std::string& what) {
  std::size_t depth = 0;
  bool too_deep = false;
  Json::parser_callback_t cb = [&](int d, Json::parse_event_t event, Json&) {
    if (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) {
      depth = static_cast<std::size_t>(d) + 1;
      if (depth > kMaxJsonDepth) too_deep = true;
    }
    return !too_deep;
  };
  Json j;
  try {
    j = Json::parse(text.begin(), text.end(), cb);
  } catch (const Json::exception& e) {
    if (too_deep) bad(fmt::format("{}: nested deeper than {} levels", what, kMaxJsonDepth));
    // nlohmann's messages start "[json.exception.parse_error.101] parse error at line 1, ...".
    std::string m = e.what();
    if (auto p = m.find("] "); p != std::string::npos) m = m.substr(p + 2);
    bad(fmt::format("{}: malformed JSON: {}", what, m));
  }
  if (too_deep) bad(fmt::format("{}: nested deeper than {} levels", what, kMaxJsonDepth));
  return j;
}

void add_input(InferenceRequest& r, const Json& v, const std::string& where) {
  if (v.is_string()) {
    if (!r.pairs.empty()) bad(where + ": expected {\"text\", \"text_pair\"} like the other inputs");
    r.texts.push_back(v.get<std::string>());
    return;
  }
  if (v.is_object()) {
    auto t = v.find("text");
    auto p = v.find("text_pair");
    if (t == v.end() || !t->is_string()) bad(where + ".text: expected a string");
    if (p == v.end()) {
      if (!r.pairs.empty()) bad(where + ".text_pair: missing (the other inputs are pairs)");
      r.texts.push_back(t->get<std::string>());
      return;
    }
    if (!p->is_string()) bad(where + ".text_pair: expected a string");
    if (r.pairs.size() != r.texts.size()) bad(where + ": a pair among single texts");
    r.texts.push_back(t->get<std::string>());
    r.pairs.push_back(p->get<std::string>());
    return;
  }
  bad(where + ": expected a string or {\"text\", \"text_pair\"}");
}

// Scores of every label under `function`, from the head's logits ("" keeps the Predictor's).
std::vector<double> scores_of(const predict::Prediction& p, const std::string& function) {
  std::vector<double> s(p.scores.begin(), p.scores.end());
  if (function.empty()) return s;
  if (function == "none") return {p.logits.begin(), p.logits.end()};
  if (function == "sigmoid") {
    for (std::size_t j = 0; j < s.size(); ++j) s[j] = 1.0 / (1.0 + std::exp(-static_cast<double>(p.logits[j])));
    return s;
  }
  const double top = *std::max_element(p.logits.begin(), p.logits.end());  // softmax
  double sum = 0;
  for (std::size_t j = 0; j < s.size(); ++j) sum += (s[j] = std::exp(static_cast<double>(p.logits[j]) - top));
  for (double& v : s) v /= sum;
  return s;
}

}  // namespace

InferenceRequest parse_hf_request(std::string_view body) {
  const Json j = parse_bounded(body, "body");
  if (!j.is_object()) bad("body: expected a JSON object with \"inputs\"");
  InferenceRequest r;
  auto inputs = j.find("inputs");
  if (inputs == j.end()) bad("inputs: missing");
  if (inputs->is_array()) {
    r.batched = true;
    if (inputs->empty()) bad("inputs: empty list");
    for (std::size_t i = 0; i < inputs->size(); ++i) add_input(r, (*inputs)[i], fmt::format("inputs[{}]", i));
  } else {
    add_input(r, *inputs, "inputs");
  }
  if (auto params = j.find("parameters"); params != j.end() && !params->is_null()) {
    if (!params->is_object()) bad("parameters: expected an object");
    if (auto k = params->find("top_k"); k != params->end() && !k->is_null()) {
      if (!k->is_number_integer() || k->get<std::int64_t>() < 1) bad("parameters.top_k: expected an integer >= 1");
      r.top_k = k->get<std::size_t>();
    }
    if (auto f = params->find("function_to_apply"); f != params->end() && !f->is_null()) {
      if (!f->is_string()) bad("parameters.function_to_apply: expected softmax, sigmoid or none");
      r.function = f->get<std::string>();
      if (r.function != "softmax" && r.function != "sigmoid" && r.function != "none")
        bad("parameters.function_to_apply: expected softmax, sigmoid or none, got '" + r.function + "'");
    }
  }
  return r;
}

InferenceRequest parse_jsonl_request(std::string_view body, const std::string& text_field,
                                     const std::string& pair_field) {
  InferenceRequest r;
  r.batched = true;
  std::size_t line = 0;
  while (!body.empty()) {
    ++line;
    const std::size_t nl = body.find('\n');
    std::string_view text = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::string where = fmt::format("line {}", line);
    Json v = parse_bounded(text, where);
    if (!v.is_object()) bad(where + ": expected a JSON object");
    auto t = v.find(text_field);
    if (t == v.end()) bad(fmt::format("{}: field \"{}\": missing", where, text_field));
    if (!t->is_string()) bad(fmt::format("{}: field \"{}\": expected a string", where, text_field));
    r.texts.push_back(t->get<std::string>());
    if (!pair_field.empty()) {
      auto p = v.find(pair_field);
      if (p == v.end()) bad(fmt::format("{}: field \"{}\": missing", where, pair_field));
      if (!p->is_string()) bad(fmt::format("{}: field \"{}\": expected a string", where, pair_field));
      r.pairs.push_back(p->get<std::string>());
    }
    r.records.push_back(std::move(v));
  }
  if (r.texts.empty()) bad("body: no JSON Lines records");
  return r;
}

Json hf_response(const InferenceRequest& request, const std::vector<predict::Prediction>& preds,
                 const std::vector<std::string>& labels, predict::Task task) {
  (void)task;
  Json out = Json::array();
  for (const predict::Prediction& p : preds) {
    const std::vector<double> s = scores_of(p, request.function);
    std::vector<std::size_t> order(s.size());
    std::iota(order.begin(), order.end(), 0);
    // Best first; equal scores keep label order, as argmax picks the first.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return s[a] > s[b]; });
    const std::size_t k = std::min(request.top_k.value_or(1), order.size());
    Json list = Json::array();
    for (std::size_t i = 0; i < k; ++i)
      list.push_back({{"label", labels[order[i]]}, {"score", predict::shortest(static_cast<float>(s[order[i]]))}});
    if (request.top_k) {
      out.push_back(std::move(list));
    } else {
      out.push_back(std::move(list[0]));
    }
  }
  // transformers: one input with top_k answers its list itself; without, a list of one dict.
  if (!request.batched && request.top_k) return out[0];
  return out;
}

std::string jsonl_response(InferenceRequest& request, const std::vector<predict::Prediction>& preds,
                           const predict::BatchOptions& batch, const std::vector<std::string>& labels,
                           predict::Task task) {
  std::string out;
  for (std::size_t i = 0; i < preds.size(); ++i) {
    Json& r = request.records[i];
    predict::add_prediction(r, batch.prediction_field, preds[i], labels, task, batch.scores);
    out += r.dump(-1, ' ', false, Json::error_handler_t::replace);
    out += '\n';
  }
  return out;
}

}  // namespace hf::serve
