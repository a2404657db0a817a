// hf-predict's batch mode: read JSONL or lines a window at a time (memory stays bounded whatever
// the input size), predict the window (the Predictor sorts it by length into batches), write one
// JSON object per record in input order to stdout or atomically to a file.
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "io/io.h"
#include "predict/predict.h"

namespace hf::predict {
namespace {

// The fields hf-predict adds to each record besides the prediction's (hf-eval reads these names by
// default).
constexpr const char* kScoreField = "score";
constexpr const char* kScoresField = "scores";

}  // namespace

// A probability as the shortest decimal that reads back as the same float ("0.97312"), not the
// 17 digits of the double it widens to.
double shortest(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  double d = v;
  std::from_chars(buf, end, d);
  return d;
}

void add_prediction(nlohmann::ordered_json& v, const std::string& field, const Prediction& p,
                    const std::vector<std::string>& labels, Task task, bool scores) {
  switch (task) {
    case Task::kSingleLabel:
      v[field] = labels[static_cast<std::size_t>(p.label)];
      v[kScoreField] = shortest(p.scores[static_cast<std::size_t>(p.label)]);
      break;
    case Task::kMultiLabel: {
      nlohmann::ordered_json names = nlohmann::ordered_json::array(), probs = nlohmann::ordered_json::array();
      for (std::int64_t id : p.labels) {
        names.push_back(labels[static_cast<std::size_t>(id)]);
        probs.push_back(shortest(p.scores[static_cast<std::size_t>(id)]));
      }
      v[field] = std::move(names);
      v[kScoreField] = std::move(probs);
      break;
    }
    case Task::kRegression:
      if (p.scores.size() == 1) {
        v[field] = shortest(p.scores[0]);
      } else {
        nlohmann::ordered_json values = nlohmann::ordered_json::array();
        for (float s : p.scores) values.push_back(shortest(s));
        v[field] = std::move(values);
      }
      return;
  }
  if (scores) {
    nlohmann::ordered_json all = nlohmann::ordered_json::object();
    for (std::size_t j = 0; j < labels.size(); ++j) all[labels[j]] = shortest(p.scores[j]);
    v[kScoresField] = std::move(all);
  }
}

namespace {

// One output line: the record's fields as read (numbers keep every digit), those named like an
// added field replaced by it, then the added fields.
void append_record(std::string& out, const io::Record& r, const nlohmann::ordered_json& added) {
  std::vector<std::string_view> names;
  for (const auto& [key, value] : added.items()) names.push_back(key);
  std::string members = added.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  io::append_passthrough(out, r, names, std::string_view(members).substr(1, members.size() - 2));
  out += '\n';
}

Outcome run(const BatchOptions& o) {
  if (o.model.empty()) throw Error(ErrorKind::kUsage, "--model is required");
  if (o.format != "jsonl" && o.format != "lines")
    throw Error(ErrorKind::kUsage, "--format: expected jsonl or lines, got '" + o.format + "'");
  if (o.on_bad_record != "error" && o.on_bad_record != "skip")
    throw Error(ErrorKind::kUsage, "--on-bad-record: expected error or skip, got '" + o.on_bad_record + "'");
  if (o.prediction_field.empty()) throw Error(ErrorKind::kUsage, "--prediction-field must not be empty");
  const bool lines = o.format == "lines";
  const bool skip = o.on_bad_record == "skip";
  if (lines && !o.text_pair_field.empty()) throw Error(ErrorKind::kUsage, "--text-pair-field needs --format jsonl");
  // A line is the record {"text": line}.
  const std::string text_field = lines ? "text" : o.text_field;

  // Cheap failures (missing input, unwritable output) come before the model loads.
  io::RecordReader reader(o.input, lines ? io::Format::kLines : io::Format::kJsonl,
                          io::ReaderOptions{skip ? io::OnBad::kSkip : io::OnBad::kError});
  const std::string& source = reader.display_name();
  // A file appears only once the whole run succeeded; a closed stdout throws BrokenPipe (quiet exit).
  io::JsonlWriter out(o.output);
  const Predictor predictor(o.model, o.predictor);
  const std::vector<std::string>& labels = predictor.labels();
  const Task task = predictor.task();
  log::info("model {}: {} labels, max_length {}, batch size {}, device {}", o.model, labels.size(),
            predictor.max_length(), o.predictor.batch_size, predictor.device());

  const std::size_t window = std::max(o.window, o.predictor.batch_size);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t records = 0, tokens = 0, truncated = 0, skipped = 0;
  bool warned_overwrite = false;
  log::Progress progress("predict", 0);
  std::vector<io::Record> chunk;
  std::vector<std::string_view> texts, pairs;
  std::vector<std::size_t> rows;  // chunk index of each text
  bool more = true;
  while (more) {
    check_stop();
    chunk.clear();
    while (chunk.size() < window) {
      check_stop();
      std::optional<io::Record> r = reader.next();
      if (!r) {
        more = false;
        break;
      }
      chunk.push_back(std::move(*r));
    }
    texts.clear();
    pairs.clear();
    rows.clear();
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      try {
        std::string_view text = io::require_string(chunk[i], text_field, source);
        if (!o.text_pair_field.empty()) pairs.push_back(io::require_string(chunk[i], o.text_pair_field, source));
        texts.push_back(text);
        rows.push_back(i);
      } catch (const Error& err) {
        if (!skip) throw;
        log::warn("skipped: {}", err.what());
        ++skipped;
      }
    }
    const std::vector<Prediction> preds = predictor.predict(texts, pairs);
    for (std::size_t k = 0; k < rows.size(); ++k) {
      io::Record& r = chunk[rows[k]];
      const Prediction& p = preds[k];
      if (!p.error.empty()) {
        Error err(ErrorKind::kDataErr, Where{source, r.line, text_field}, p.error);
        if (!skip) throw err;
        log::warn("skipped: {}", err.what());
        ++skipped;
        continue;
      }
      if (!warned_overwrite && (r.value.contains(o.prediction_field) || r.value.contains(kScoreField) ||
                                (o.scores && r.value.contains(kScoresField)))) {
        log::warn("{}:{}: input fields named {}, {} or {} are replaced by the prediction's", source, r.line,
                  o.prediction_field, kScoreField, kScoresField);
        warned_overwrite = true;
      }
      nlohmann::ordered_json added = nlohmann::ordered_json::object();
      add_prediction(added, o.prediction_field, p, labels, task, o.scores);
      append_record(out.buffer(), r, added);
      out.maybe_flush();
      ++records;
      tokens += p.tokens;
      truncated += p.truncated;
    }
    out.flush();
    progress.update(records);
  }
  progress.finish();
  skipped += static_cast<std::uint64_t>(reader.bad_records());
  check_stop();
  out.close();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::info("predicted {} records ({} tokens, {} truncated to {}, {} skipped) in {:.3f} s: {:.1f} records/s, "
            "{:.0f} tokens/s",
            records, tokens, truncated, predictor.max_length(), skipped, seconds, records / std::max(seconds, 1e-9),
            tokens / std::max(seconds, 1e-9));
  return Outcome::kOk;
}

}  // namespace

// A stop signal ends the run between batches; a file output is not written (exit 128+N).
Outcome run_batch(const BatchOptions& o) {
  return stoppable(
      [&] {
        try {
          return run(o);
        } catch (const Cancelled&) {
          if (o.output != "-") log::warn("stopped: {} not written", o.output);
          throw;
        }
      },
      Outcome::kOk);
}

}  // namespace hf::predict
