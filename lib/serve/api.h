// The inference request and response bodies of POST /invocations and /predict: the Hugging Face
// inference toolkit's JSON for text classification, and JSON Lines records as batch mode reads
// and writes them. Pure functions of bytes and Predictions (no HTTP, no model).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "predict/predict.h"

namespace hf::serve {

// What a request asks for. Parse errors are Error(kDataErr) naming the field or line.
struct InferenceRequest {
  std::vector<std::string> texts;
  std::vector<std::string> pairs;     // empty, or the second text of each input
  bool batched = false;               // "inputs" was a list: the answer is a list per input
  std::optional<std::size_t> top_k;   // set: every input gets a list of its k best labels
  std::string function;               // "" (the model's head) | softmax | sigmoid | none
  std::vector<nlohmann::ordered_json> records;  // JSON Lines requests: the records, passed through
};

// Limits on untrusted structure.
inline constexpr std::size_t kMaxJsonDepth = 16;

// {"inputs": "t" | ["t", ...] | {"text": "t", "text_pair": "u"} | [{"text", "text_pair"}, ...],
//  "parameters": {"top_k": k, "function_to_apply": "softmax" | "sigmoid" | "none"}}
InferenceRequest parse_hf_request(std::string_view body);
// One JSON object per line; `text_field` (and `pair_field` when non-empty) must be strings.
InferenceRequest parse_jsonl_request(std::string_view body, const std::string& text_field,
                                     const std::string& pair_field);

// transformers' text-classification pipeline answer: per input [{"label", "score"}] sorted by
// score (the best only without top_k); a single input's answer unwrapped as the pipeline does
// (a str without top_k gives a list of one dict).
nlohmann::ordered_json hf_response(const InferenceRequest& request, const std::vector<predict::Prediction>& preds,
                                   const std::vector<std::string>& labels, predict::Task task);
// The records with batch mode's prediction fields, one JSON object per line.
std::string jsonl_response(InferenceRequest& request, const std::vector<predict::Prediction>& preds,
                           const predict::BatchOptions& batch, const std::vector<std::string>& labels,
                           predict::Task task);

}  // namespace hf::serve
