// hf-eval's library half: read predictions (and optionally references) JSONL, join them, encode
// labels the way scikit-learn orders them, score, and check the gates.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "io/io.h"
#include "metrics/metrics.h"

namespace hf::metrics {
namespace {

using Json = nlohmann::ordered_json;

using Line = io::Record;  // .line (1-based), .value (the JSON object)

// All records of a JSONL file ("-" = stdin); an input without records is an error here. A stop
// signal ends the read (Cancelled).
std::vector<Line> read_jsonl(const std::string& path, const std::string& shown) {
  std::vector<Line> lines;
  io::RecordReader reader(path, io::Format::kJsonl);
  while (auto r = reader.next()) {
    check_stop();
    lines.push_back(std::move(*r));
  }
  if (lines.empty()) throw Error(ErrorKind::kDataErr, fmt::format("{}: no records", shown));
  return lines;
}

std::string shown_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

// One value (a label or a list of labels) and where it came from.
struct Source {
  const std::string* file;
  std::int64_t line;
  const Json* value;
};

const Json& field(const Line& l, const std::string& file, const std::string& name) {
  auto it = l.value.find(name);
  if (it == l.value.end() || it->is_null()) throw Error(ErrorKind::kDataErr, Where{file, l.line, name}, "missing");
  return *it;
}

// Collects labels, remembering whether any was an integer and any a string (scikit-learn refuses a
// mix, and the mix decides how labels sort).
class LabelSet {
 public:
  std::string add(const Json& v, const Where& where) {
    std::string s;
    if (v.is_string()) {
      s = v.get<std::string>();
      if (!strings_++) first_string_ = where;
    } else if (v.is_number_integer()) {
      s = v.dump();
      if (!integers_++) first_integer_ = where;
    } else {
      throw Error(ErrorKind::kDataErr, where, fmt::format("expected a label (string or integer), got {}", v.dump()));
    }
    if (strings_ && integers_)
      throw Error(ErrorKind::kDataErr, where,
                  fmt::format("labels mix strings and integers (first string at {}line {}, first integer at {}line {})",
                              first_string_.file + ":", first_string_.line, first_integer_.file + ":",
                              first_integer_.line));
    seen_.insert(s);
    return s;
  }
  // Sorted as numpy sorts the labels scikit-learn finds: numerically or by code point (UTF-8 bytes).
  std::vector<std::string> sorted() const {
    std::vector<std::string> v(seen_.begin(), seen_.end());
    if (integers_)
      std::sort(v.begin(), v.end(), [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
    return v;
  }

 private:
  std::set<std::string> seen_;
  std::int64_t strings_ = 0, integers_ = 0;
  Where first_string_, first_integer_;
};

// A joined record: the prediction and reference values with their origins.
struct Pair {
  Source pred, ref;
  const Json* scores = nullptr;
};

std::string id_key(const Line& l, const std::string& file, const std::string& id_field) {
  const Json& v = field(l, file, id_field);
  if (!v.is_string() && !v.is_number_integer())
    throw Error(ErrorKind::kDataErr, Where{file, l.line, id_field}, "expected a string or integer id");
  return v.dump();
}

std::vector<Pair> join(const EvalOptions& o, const std::vector<Line>& preds, const std::string& pred_file,
                       const std::vector<Line>* refs, const std::string& ref_file) {
  std::vector<Pair> pairs;
  pairs.reserve(preds.size());
  auto scores_of = [&](const Line& l) -> const Json* {
    auto it = l.value.find(o.scores_field);
    if (it == l.value.end() || it->is_null()) return nullptr;
    if (!it->is_object())
      throw Error(ErrorKind::kDataErr, Where{pred_file, l.line, o.scores_field}, "expected an object {label: probability}");
    return &*it;
  };
  auto pred_source = [&](const Line& l) {
    return Source{&pred_file, l.line, &field(l, pred_file, o.prediction_field)};
  };
  if (!refs) {
    for (const Line& l : preds)
      pairs.push_back({pred_source(l), Source{&pred_file, l.line, &field(l, pred_file, o.reference_field)}, scores_of(l)});
    return pairs;
  }
  if (o.id_field.empty()) {
    if (refs->size() != preds.size())
      throw Error(ErrorKind::kDataErr, fmt::format("{} has {} records but {} has {} (joined by line; use --id-field "
                                                   "to join by id)",
                                                   pred_file, preds.size(), ref_file, refs->size()));
    for (std::size_t i = 0; i < preds.size(); ++i) {
      const Line& r = (*refs)[i];
      pairs.push_back({pred_source(preds[i]), Source{&ref_file, r.line, &field(r, ref_file, o.reference_field)},
                       scores_of(preds[i])});
    }
    return pairs;
  }
  std::map<std::string, const Line*> by_id;
  for (const Line& r : *refs) {
    auto [it, fresh] = by_id.emplace(id_key(r, ref_file, o.id_field), &r);
    if (!fresh)
      throw Error(ErrorKind::kDataErr, Where{ref_file, r.line, o.id_field},
                  fmt::format("id {} repeats line {}", it->first, it->second->line));
  }
  std::map<std::string, std::int64_t> used;
  for (const Line& l : preds) {
    const std::string id = id_key(l, pred_file, o.id_field);
    auto it = by_id.find(id);
    if (it == by_id.end())
      throw Error(ErrorKind::kDataErr, Where{pred_file, l.line, o.id_field}, fmt::format("id {} has no reference in {}", id, ref_file));
    auto [u, fresh] = used.emplace(id, l.line);
    if (!fresh)
      throw Error(ErrorKind::kDataErr, Where{pred_file, l.line, o.id_field}, fmt::format("id {} repeats line {}", id, u->second));
    const Line& r = *it->second;
    pairs.push_back({pred_source(l), Source{&ref_file, r.line, &field(r, ref_file, o.reference_field)}, scores_of(l)});
  }
  if (used.size() != by_id.size()) {
    for (const Line& r : *refs)
      if (!used.count(id_key(r, ref_file, o.id_field)))
        throw Error(ErrorKind::kDataErr, Where{ref_file, r.line, o.id_field},
                    fmt::format("{} references have no prediction in {}, the first is id {}", by_id.size() - used.size(),
                                pred_file, id_key(r, ref_file, o.id_field)));
  }
  return pairs;
}

Where where_of(const Source& s, const std::string& field_name) { return Where{*s.file, s.line, field_name}; }

// Turns the labels into indices over `names` (the fixed --labels, or the sorted union).
class Encoder {
 public:
  Encoder(const std::vector<std::string>& fixed, const LabelSet& seen) : names_(fixed.empty() ? seen.sorted() : fixed) {
    for (std::size_t i = 0; i < names_.size(); ++i)
      if (!index_.emplace(names_[i], static_cast<std::int64_t>(i)).second)
        throw Error(ErrorKind::kUsage, fmt::format("--labels: '{}' is listed twice", names_[i]));
  }
  std::int64_t operator()(const std::string& label, const Where& where) const {
    auto it = index_.find(label);
    if (it == index_.end())
      throw Error(ErrorKind::kDataErr, where, fmt::format("unknown label '{}' (not in --labels)", label));
    return it->second;
  }
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::map<std::string, std::int64_t> index_;
};

Report score_single(const EvalOptions& o, const std::vector<Pair>& pairs) {
  LabelSet seen;
  std::vector<std::string> truth, pred;
  for (const Pair& p : pairs) {
    const Where rw = where_of(p.ref, o.reference_field), pw = where_of(p.pred, o.prediction_field);
    if (p.ref.value->is_array()) throw Error(ErrorKind::kDataErr, rw, "a list of labels in single-label input (the first record had one label)");
    if (p.pred.value->is_array()) throw Error(ErrorKind::kDataErr, pw, "a list of labels in single-label input (the first record had one label)");
    truth.push_back(seen.add(*p.ref.value, rw));
    pred.push_back(seen.add(*p.pred.value, pw));
  }
  const Encoder enc(o.labels, seen);
  std::vector<std::int64_t> y_true, y_pred;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    y_true.push_back(enc(truth[i], where_of(pairs[i].ref, o.reference_field)));
    y_pred.push_back(enc(pred[i], where_of(pairs[i].pred, o.prediction_field)));
  }
  // Log loss only when every record carries scores.
  std::vector<double> p_true;
  const auto missing = std::find_if(pairs.begin(), pairs.end(), [](const Pair& p) { return p.scores == nullptr; });
  if (missing == pairs.end()) {
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      const Where w = where_of(pairs[i].pred, o.scores_field);
      for (const auto& [k, v] : pairs[i].scores->items())
        if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1)
          throw Error(ErrorKind::kDataErr, w, fmt::format("score of '{}' is {}, expected a probability in [0, 1]", k, v.dump()));
      auto it = pairs[i].scores->find(truth[i]);
      if (it == pairs[i].scores->end())
        throw Error(ErrorKind::kDataErr, w, fmt::format("no score for the reference label '{}'", truth[i]));
      p_true.push_back(it->get<double>());
    }
  } else if (missing != pairs.begin()) {
    log::warn("{}:{}: no \"{}\" field: log_loss left out", *missing->pred.file, missing->pred.line, o.scores_field);
  }
  // Binary with scores: the positive class' score of every record, for roc_auc and the curves.
  std::vector<double> positive;
  if (!p_true.empty() && enc.names().size() == 2) {
    for (const Pair& p : pairs) {
      auto it = p.scores->find(enc.names()[1]);
      if (it == p.scores->end()) {
        log::warn("{}:{}: no score for '{}': roc_auc and average_precision left out", *p.pred.file, p.pred.line,
                  enc.names()[1]);
        positive.clear();
        break;
      }
      positive.push_back(it->get<double>());
    }
  }
  Report r = single_label_report(y_true, y_pred, enc.names(), p_true);
  add_chart_metrics(r, y_true, positive);
  return r;
}

Report score_multi(const EvalOptions& o, const std::vector<Pair>& pairs) {
  LabelSet seen;
  std::vector<std::vector<std::string>> truth, pred;
  auto labels_of = [&](const Source& s, const std::string& name) {
    const Where w = where_of(s, name);
    if (!s.value->is_array()) throw Error(ErrorKind::kDataErr, w, "expected a list of labels (the first record had one)");
    std::vector<std::string> v;
    for (const Json& e : *s.value) v.push_back(seen.add(e, w));
    return v;
  };
  for (const Pair& p : pairs) {
    truth.push_back(labels_of(p.ref, o.reference_field));
    pred.push_back(labels_of(p.pred, o.prediction_field));
  }
  const Encoder enc(o.labels, seen);
  const std::size_t k = enc.names().size();
  if (k == 0) throw Error(ErrorKind::kDataErr, fmt::format("{}: no labels in any record", *pairs.front().pred.file));
  std::vector<std::uint8_t> y_true(pairs.size() * k, 0), y_pred(pairs.size() * k, 0);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    for (const std::string& l : truth[i]) y_true[i * k + enc(l, where_of(pairs[i].ref, o.reference_field))] = 1;
    for (const std::string& l : pred[i]) y_pred[i * k + enc(l, where_of(pairs[i].pred, o.prediction_field))] = 1;
  }
  return multi_label_report(y_true, y_pred, enc.names());
}

}  // namespace

bool EvalResult::passed() const {
  return std::all_of(gates.begin(), gates.end(), [](const GateResult& g) { return g.passed; });
}

nlohmann::ordered_json EvalResult::to_json() const {
  Json j = metrics::to_json(report);
  if (!gates.empty()) {
    Json arr = Json::array();
    for (const GateResult& g : gates)
      arr.push_back({{"metric", g.gate.metric},
                     {"kind", g.gate.kind == GateKind::kFailUnder ? "fail_under" : "fail_over"},
                     {"threshold", g.gate.threshold},
                     {"value", g.value},
                     {"passed", g.passed}});
    j["gates"] = std::move(arr);
  }
  return j;
}

EvalResult evaluate(const EvalOptions& o) {
  std::vector<Gate> gates = parse_gates(o.fail_under, GateKind::kFailUnder);
  for (Gate& g : parse_gates(o.fail_over, GateKind::kFailOver)) gates.push_back(std::move(g));
  if (!o.id_field.empty() && o.references.empty())
    throw Error(ErrorKind::kUsage, "--id-field needs --references");
  if (!o.report.empty()) check_report_path(o.report);
  if (!o.training_log.empty() && o.report.empty()) throw Error(ErrorKind::kUsage, "--training-log needs --report");
  if (o.predictions == "-" && o.references == "-")
    throw Error(ErrorKind::kUsage, "predictions and references cannot both be stdin");

  const std::string pred_file = shown_name(o.predictions), ref_file = shown_name(o.references);
  const std::vector<Line> preds = read_jsonl(o.predictions, pred_file);
  std::vector<Line> refs;
  if (!o.references.empty()) refs = read_jsonl(o.references, ref_file);
  const std::vector<Pair> pairs = join(o, preds, pred_file, o.references.empty() ? nullptr : &refs, ref_file);

  EvalResult result;
  result.report = pairs.front().ref.value->is_array() ? score_multi(o, pairs) : score_single(o, pairs);
  result.gates = check_gates(result.report, gates);
  if (!o.report.empty()) write_report(o.report, result.report, o.training_log);
  return result;
}

}  // namespace hf::metrics
