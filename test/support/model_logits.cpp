// Test driver for the model golden tests (not a product tool): loads an HF model directory with
// hf::model::from_pretrained (or builds a fresh one of its family from its config with --init), runs a batch read
// as JSON from stdin and prints JSON on stdout:
//   in:  {"input_ids": [[...]], "attention_mask": [[...]], "token_type_ids": [[...]], "labels": [...]}
//   out: {"logits": [[...]], "loss": x (when labels), "missing": [...], "unexpected": [...],
//         "mismatched": [...], "problem_type": "..."}
// Usage: model_logits [--num-labels N] [--labels a,b] [--problem-type T] [--ignore-mismatched-sizes]
//                     [--init --seed S] [--save DIR] MODEL_DIR < request.json
// Errors: "model_logits: error: ..." on stderr and the hfkit exit code of the error's kind.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/exit_codes.h"
#include "core/error.h"
#include "model/model.h"

namespace {

torch::Tensor to_tensor(const nlohmann::json& rows, torch::ScalarType dtype) {
  std::vector<double> flat;
  std::int64_t width = -1;
  for (const auto& row : rows) {
    if (row.is_array()) {
      if (width >= 0 && width != static_cast<std::int64_t>(row.size())) throw std::runtime_error("ragged batch");
      width = static_cast<std::int64_t>(row.size());
      for (const auto& v : row) flat.push_back(v.get<double>());
    } else {
      flat.push_back(row.get<double>());
    }
  }
  torch::Tensor t = torch::tensor(flat, torch::kFloat64).to(dtype);
  return width >= 0 ? t.view({static_cast<std::int64_t>(rows.size()), width}) : t;
}

int run(int argc, char** argv) {
  hf::model::LoadOptions options;
  bool init = false;
  std::int64_t seed = 0;
  std::string save, dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw hf::Error(hf::ErrorKind::kUsage, a + " needs a value");
      return argv[++i];
    };
    if (a == "--num-labels") options.num_labels = std::stoll(next());
    else if (a == "--labels") {
      std::stringstream ss(next());
      for (std::string l; std::getline(ss, l, ',');) options.labels.push_back(l);
    } else if (a == "--problem-type") options.problem_type = hf::model::parse_problem_type(next());
    else if (a == "--ignore-mismatched-sizes") options.ignore_mismatched_sizes = true;
    else if (a == "--init") init = true;
    else if (a == "--seed") seed = std::stoll(next());
    else if (a == "--save") save = next();
    else if (!a.starts_with("--") && dir.empty()) dir = a;
    else throw hf::Error(hf::ErrorKind::kUsage, "unknown argument " + a);
  }
  if (dir.empty()) throw hf::Error(hf::ErrorKind::kUsage, "missing MODEL_DIR");

  hf::model::LoadReport report;
  std::shared_ptr<hf::model::SequenceClassifier> model;
  if (init) {
    const std::unique_ptr<hf::model::ModelConfig> config = hf::model::ModelConfig::load(dir);
    if (options.num_labels) config->set_num_labels(*options.num_labels);
    if (!options.labels.empty()) config->id2label = options.labels;
    if (options.problem_type) config->problem_type = options.problem_type;
    torch::manual_seed(seed);
    model = config->make_model();
    model->eval();
  } else {
    model = hf::model::from_pretrained(dir, options, &report);
  }
  if (!save.empty()) hf::model::save_pretrained(*model, save);

  const std::string text(std::istreambuf_iterator<char>(std::cin), {});
  nlohmann::ordered_json out;
  if (!text.empty()) {
    const nlohmann::json req = nlohmann::json::parse(text);
    torch::NoGradGuard no_grad;
    const torch::Tensor ids = to_tensor(req.at("input_ids"), torch::kLong);
    const torch::Tensor mask = req.contains("attention_mask") ? to_tensor(req["attention_mask"], torch::kLong) : torch::Tensor();
    const torch::Tensor types = req.contains("token_type_ids") ? to_tensor(req["token_type_ids"], torch::kLong) : torch::Tensor();
    const torch::Tensor logits = model->forward(ids, mask, types).to(torch::kFloat64).contiguous();  // [B, L]
    std::vector<std::vector<double>> rows(logits.size(0));
    for (std::int64_t b = 0; b < logits.size(0); ++b)
      rows[b].assign(logits[b].data_ptr<double>(), logits[b].data_ptr<double>() + logits.size(1));
    out["logits"] = rows;
    if (req.contains("labels")) {
      const nlohmann::json& l = req["labels"];
      const bool integer = l.front().is_number_integer();  // [[1.0, 0.0]] multi-hot rows are floats
      const torch::Tensor labels = to_tensor(l, integer ? torch::kLong : torch::kFloat32);
      const auto type = hf::model::resolve_problem_type(model->config(), labels);
      out["problem_type"] = std::string(hf::model::to_string(type));
      out["loss"] = hf::model::classification_loss(type, logits.to(torch::kFloat32), labels).item<double>();
    }
  }
  out["missing"] = report.missing;
  out["unexpected"] = report.unexpected;
  out["mismatched"] = report.mismatched;
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const hf::Error& e) {
    std::fprintf(stderr, "model_logits: error: %s\n", e.what());
    return hf::cli::exit_code_for(e.kind());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_logits: error: %s\n", e.what());
    return 70;
  }
}
