// The hf-preprocess pipeline: records -> (dedupe, labels, split) -> tokenize in parallel -> dataset
// directory; or, with output "-", a streaming JSONL encoder with bounded memory.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <unordered_set>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/thread_pool.h"
#include "data/data.h"
#include "io/io.h"
#include "tokenizer/tokenizer.h"

namespace hf::data {
namespace {

constexpr std::size_t kStreamChunk = 8192;  // records tokenized together in streaming mode
constexpr std::size_t kGrain = 256;         // records per thread-pool task
constexpr const char* kManifest = "dataset.json";
// Streaming output adds these to each record (replacing input fields of the same name); the
// second only for pairs.
constexpr std::string_view kAddedFields[] = {"input_ids", "token_type_ids"};

io::Format resolve_format(const std::string& format, const std::string& path) {
  if (format == "jsonl") return io::Format::kJsonl;
  if (format == "csv") return io::Format::kCsv;
  if (format == "tsv") return io::Format::kTsv;
  if (format == "lines") return io::Format::kLines;
  if (format != "auto") throw Error(ErrorKind::kUsage, "--format: unknown format '" + format + "'");
  if (path == "-") throw Error(ErrorKind::kUsage, "--format is required when reading stdin");
  return io::format_from_path(path);
}

tokenizer::Truncation resolve_truncation(const std::string& s) {
  if (s == "longest_first") return tokenizer::Truncation::kLongestFirst;
  if (s == "only_first") return tokenizer::Truncation::kOnlyFirst;
  if (s == "only_second") return tokenizer::Truncation::kOnlySecond;
  throw Error(ErrorKind::kUsage, "--truncation: expected longest_first, only_first or only_second, got '" + s + "'");
}

bool skip_bad(const PreprocessOptions& o) {
  if (o.on_bad_record == "skip") return true;
  if (o.on_bad_record == "error") return false;
  throw Error(ErrorKind::kUsage, "--on-bad-record: expected error or skip, got '" + o.on_bad_record + "'");
}

// One input example before tokenization.
struct Example {
  std::string text;
  std::string pair;
  std::vector<std::string> labels;  // one for single-label, any number for multi-label
  bool label_is_list = false;
  std::string record;  // the input record as one JSON line (fields as read), for <split>.jsonl
};

void append_ids(std::string& out, const char* key, const std::vector<std::int32_t>& ids) {
  out += '"';
  out += key;
  out += "\":[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    io::append_int(out, ids[i]);
  }
  out += ']';
}

class Encoder {
 public:
  Encoder(const PreprocessOptions& o, const tokenizer::Tokenizer& tok) : tok_(tok) {
    opts_.max_length = o.max_length;
    opts_.truncation = resolve_truncation(o.truncation);
  }
  tokenizer::Encoding operator()(std::string_view text, const std::string_view* pair) const {
    return pair ? tok_.encode_pair(text, *pair, opts_) : tok_.encode(text, opts_);
  }

 private:
  const tokenizer::Tokenizer& tok_;
  tokenizer::EncodeOptions opts_;
};

// Encodes `n` items in parallel (text_of(i) gives the text and optional pair) and appends one JSON
// line per item, built by line_of(i, encoding, out), to `writer` in order. A tokenizer error is
// reported at where_of(i) (file and line). In skip mode an item whose encoding fails is counted,
// logged ("skipped: FILE:LINE: reason") and left out.
struct StreamStats {
  std::uint64_t records = 0, tokens = 0, truncated = 0, bad = 0;
};

template <typename TextOf, typename LineOf, typename WhereOf>
void encode_and_write(std::size_t n, const TextOf& text_of, const LineOf& line_of, const WhereOf& where_of,
                      const Encoder& encode, bool skip, ThreadPool& pool, io::JsonlWriter& writer,
                      StreamStats& stats) {
  std::vector<tokenizer::Encoding> enc(n);
  std::vector<std::string> errors(n);
  // Encoding and serialising both run on the pool: number formatting is a large share of the work.
  const std::size_t parts = std::min<std::size_t>(n, static_cast<std::size_t>(pool.size()) * 4);
  std::vector<std::string> out(parts);
  const std::size_t per = parts ? (n + parts - 1) / parts : 0;
  pool.parallel_for(parts, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t p = b; p < e; ++p) {
      for (std::size_t i = p * per; i < std::min(n, (p + 1) * per); ++i) {
        std::pair<std::string_view, std::optional<std::string_view>> input;
        try {
          input = text_of(i);  // its errors name the file and line already
        } catch (const Error& err) {
          if (!skip) throw;
          errors[i] = err.what();
          continue;
        }
        try {
          enc[i] = encode(input.first, input.second ? &*input.second : nullptr);
        } catch (const Error& err) {
          Error located(err.kind(), where_of(i), err.what());
          if (!skip) throw located;
          errors[i] = located.what();
          continue;
        }
        line_of(i, enc[i], out[p]);
      }
    }
  });
  for (std::size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      ++stats.bad;
      log::warn("skipped: {}", errors[i]);
      continue;
    }
    ++stats.records;
    stats.tokens += enc[i].ids.size();
    stats.truncated += enc[i].truncated;
  }
  for (const auto& s : out) {
    writer.buffer() += s;
    writer.maybe_flush();
  }
}

// --output -: one JSON object per record, in input order, memory bounded by kStreamChunk records.
Outcome stream(const PreprocessOptions& o, const tokenizer::Tokenizer& tok, ThreadPool& pool) {
  const bool skip = skip_bad(o);
  const bool pairs = !o.text_pair_field.empty();
  Encoder encode(o, tok);
  io::JsonlWriter writer("-");
  StreamStats stats;
  for (const auto& path : o.inputs) {
    io::Format fmt = resolve_format(o.format, path);
    io::RecordReader reader(path, fmt, io::ReaderOptions{skip ? io::OnBad::kSkip : io::OnBad::kError});
    const std::string& file = reader.display_name();
    if (fmt == io::Format::kLines) {
      // Fast path: lines are copied into one arena per chunk; output is {"input_ids": [...]}.
      std::string arena;
      std::vector<std::size_t> starts;
      std::vector<std::int64_t> numbers;  // line number of each
      std::string_view line;
      bool more = true;
      while (more) {
        arena.clear();
        starts.assign(1, 0);
        numbers.clear();
        while (starts.size() <= kStreamChunk && (more = reader.next_line(line))) {
          check_stop();
          arena.append(line);
          starts.push_back(arena.size());
          numbers.push_back(reader.line_number());
        }
        auto text_of = [&](std::size_t i) {
          return std::pair<std::string_view, std::optional<std::string_view>>(
              std::string_view(arena).substr(starts[i], starts[i + 1] - starts[i]), std::nullopt);
        };
        auto line_of = [](std::size_t, const tokenizer::Encoding& e, std::string& s) {
          s += '{';
          append_ids(s, "input_ids", e.ids);
          s += "}\n";
        };
        auto where_of = [&](std::size_t i) { return Where{file, numbers[i], ""}; };
        encode_and_write(starts.size() - 1, text_of, line_of, where_of, encode, skip, pool, writer, stats);
      }
    } else {
      // Records keep their fields; input_ids (and token_type_ids for pairs) are added.
      std::vector<io::Record> chunk;
      bool more = true;
      while (more) {
        chunk.clear();
        while (chunk.size() < kStreamChunk) {
          check_stop();
          auto r = reader.next();
          if (!(more = r.has_value())) break;
          chunk.push_back(std::move(*r));
        }
        auto text_of = [&](std::size_t i) {
          std::optional<std::string_view> pair;
          if (pairs) pair = io::require_string(chunk[i], o.text_pair_field, file);
          return std::pair<std::string_view, std::optional<std::string_view>>(
              io::require_string(chunk[i], o.text_field, file), pair);
        };
        auto line_of = [&](std::size_t i, const tokenizer::Encoding& e, std::string& s) {
          // Fields named like the added ones are replaced, as before; the others pass through as read.
          std::string added;
          append_ids(added, "input_ids", e.ids);
          if (pairs) {
            added += ',';
            append_ids(added, "token_type_ids", e.type_ids);
          }
          io::append_passthrough(s, chunk[i], std::span(kAddedFields).first(pairs ? 2 : 1), added);
          s += '\n';
        };
        auto where_of = [&](std::size_t i) { return Where{file, chunk[i].line, o.text_field}; };
        encode_and_write(chunk.size(), text_of, line_of, where_of, encode, skip, pool, writer, stats);
      }
    }
    stats.bad += static_cast<std::uint64_t>(reader.bad_records());
  }
  writer.close();
  log::info("encoded {} records, {} tokens, {} truncated, {} skipped", stats.records, stats.tokens,
            stats.truncated, stats.bad);
  return Outcome::kOk;
}


// Step 1's result: every example with where it came from, and what reading them found.
struct Input {
  std::vector<Example> examples;
  std::vector<std::pair<std::string, std::int64_t>> origin;  // file, line of each example
  std::string source_sha256;
  std::uint64_t bad = 0, duplicates = 0;
  bool multi_label = false;
};

// 1. Read every record (splitting and label discovery need them all).
Input read_examples(const PreprocessOptions& o, bool skip) {
  const bool pairs = !o.text_pair_field.empty();
  const bool labelled = !o.label_field.empty();
  Input in;
  Sha256 stdin_hash;
  std::string source_hashes;
  std::unordered_set<std::string> seen;
  bool any_list = false, any_scalar = false;
  std::optional<bool> integer_labels;  // the type of the first scalar label
  for (const auto& path : o.inputs) {
    io::Format fmt = resolve_format(o.format, path);
    io::RecordReader reader(path, fmt, io::ReaderOptions{skip ? io::OnBad::kSkip : io::OnBad::kError});
    const std::string text_field = fmt == io::Format::kLines ? "text" : o.text_field;
    while (auto r = reader.next()) {
      check_stop();
      Example ex;
      bool is_integer = false;
      try {
        ex.text = io::require_string(*r, text_field, reader.display_name());
        if (pairs) ex.pair = io::require_string(*r, o.text_pair_field, reader.display_name());
        if (labelled) {
          io::Labels labels = io::require_labels(*r, o.label_field, reader.display_name());
          ex.labels = std::move(labels.values);
          ex.label_is_list = labels.is_list;
          is_integer = labels.is_integer;
        }
      } catch (const Error& err) {
        if (!skip) throw;
        ++in.bad;
        log::warn("skipped: {}", err.what());
        continue;
      }
      io::append_passthrough(ex.record, *r, {}, {});
      if (path == "-") {
        stdin_hash.update(ex.record);
        stdin_hash.update("\n");
      }
      if (o.dedupe) {
        std::string key = ex.text;
        key += '\0';
        key += ex.pair;
        if (!seen.insert(std::move(key)).second) {
          ++in.duplicates;
          continue;
        }
      }
      (ex.label_is_list ? any_list : any_scalar) = true;
      if (labelled && any_list && any_scalar)
        throw Error(ErrorKind::kDataErr, Where{path, r->line, o.label_field},
                    "mixes single labels and label lists");
      // 1 and "1" would become one label: the data is ambiguous, so it is refused.
      if (labelled && !ex.label_is_list) {
        if (!integer_labels) integer_labels = is_integer;
        if (*integer_labels != is_integer)
          throw Error(ErrorKind::kDataErr, Where{path, r->line, o.label_field},
                      std::string("mixed label types: ") + (is_integer ? "an integer" : "a string") +
                          " where earlier labels are " + (*integer_labels ? "integers" : "strings"));
      }
      in.examples.push_back(std::move(ex));
      in.origin.emplace_back(path, r->line);
    }
    in.bad += static_cast<std::uint64_t>(reader.bad_records());
    source_hashes += path == "-" ? stdin_hash.hex_digest() : sha256_file(path);
  }
  if (in.examples.empty()) throw Error(ErrorKind::kDataErr, "no examples in the input");
  in.multi_label = any_list;
  in.source_sha256 = o.inputs.size() == 1 ? source_hashes : sha256_hex(source_hashes);
  return in;
}

// 2. Labels: given (fixed order; unknown labels are errors) or discovered (sorted). Returns each
// label's index.
std::map<std::string, int> resolve_labels(const PreprocessOptions& o, const Input& in, DatasetMeta& meta) {
  std::map<std::string, int> label_index;
  if (o.label_field.empty()) return label_index;
  if (!o.labels.empty()) {
    meta.label_names = o.labels;
  } else {
    std::set<std::string> names;
    for (const auto& ex : in.examples) names.insert(ex.labels.begin(), ex.labels.end());
    meta.label_names.assign(names.begin(), names.end());
    // Integer labels sort numerically ("2" before "10").
    bool numeric = std::all_of(names.begin(), names.end(), [](const std::string& s) {
      return !s.empty() && s.find_first_not_of("-0123456789") == std::string::npos && s.size() < 18;
    });
    if (numeric)
      std::sort(meta.label_names.begin(), meta.label_names.end(),
                [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  }
  for (std::size_t i = 0; i < meta.label_names.size(); ++i) {
    if (!label_index.emplace(meta.label_names[i], static_cast<int>(i)).second)
      throw Error(ErrorKind::kUsage, "--labels: '" + meta.label_names[i] + "' given twice");
  }
  for (std::size_t i = 0; i < in.examples.size(); ++i)
    for (const auto& l : in.examples[i].labels)
      if (!label_index.count(l))
        throw Error(ErrorKind::kDataErr, Where{in.origin[i].first, in.origin[i].second, o.label_field},
                    "unknown label '" + l + "' (not in --labels)");
  if (!meta.multi_label && meta.label_names.size() < 2)
    log::warn("only one label ('{}') in the data", meta.label_names.empty() ? "" : meta.label_names[0]);
  return label_index;
}

// 3. Splits: the split index of every example.
std::vector<int> assign_to_splits(const PreprocessOptions& o, const Input& in,
                                  const std::vector<std::pair<std::string, double>>& splits) {
  std::vector<double> fractions;
  for (const auto& s : splits) fractions.push_back(s.second);
  std::vector<int> strata;
  if (o.stratify) {
    if (o.label_field.empty()) throw Error(ErrorKind::kConfig, "--stratify needs labels (--label-field)");
    std::map<std::string, int> ids;
    for (const auto& ex : in.examples) {
      std::string key;
      for (const auto& l : ex.labels) key += l + '\x1f';
      strata.push_back(ids.emplace(key, static_cast<int>(ids.size())).first->second);
    }
  }
  return assign_splits(in.examples.size(), fractions, o.seed, o.stratify ? &strata : nullptr);
}

// 4. Tokenize everything in parallel.
std::vector<tokenizer::Encoding> tokenize_all(const PreprocessOptions& o, const Input& in, const Encoder& encode,
                                              ThreadPool& pool) {
  const bool pairs = !o.text_pair_field.empty();
  std::vector<tokenizer::Encoding> enc(in.examples.size());
  log::Progress progress("tokenizing", in.examples.size());
  std::atomic<std::uint64_t> done{0};
  pool.parallel_for(in.examples.size(), kGrain, [&](std::size_t b, std::size_t e) {
    check_stop();
    for (std::size_t i = b; i < e; ++i) {
      std::string_view pair = in.examples[i].pair;
      try {
        enc[i] = encode(in.examples[i].text, pairs ? &pair : nullptr);
      } catch (const Error& err) {
        throw Error(err.kind(), Where{in.origin[i].first, in.origin[i].second, o.text_field}, err.what());
      }
    }
    progress.update(done += e - b);
  });
  progress.finish();
  return enc;
}

// The run id recorded in every split and the manifest (check_same_run compares them): a digest
// of everything the output depends on — inputs, tokenizer and options. Two runs that would write
// the same dataset get the same id (so a re-run stays byte-identical and its splits are
// interchangeable); any difference in data or options gives a different one.
std::string run_id_of(const PreprocessOptions& o, const DatasetMeta& meta) {
  nlohmann::ordered_json j;
  j["hfkit_format"] = kFormatVersion;
  j["source_sha256"] = meta.source_sha256;
  j["tokenizer_sha256"] = meta.tokenizer_sha256;
  j["format"] = o.format;
  j["text_field"] = o.text_field;
  j["text_pair_field"] = o.text_pair_field;
  j["label_field"] = o.label_field;
  j["labels"] = o.labels;
  j["split"] = o.split;
  j["stratify"] = o.stratify;
  j["dedupe"] = o.dedupe;
  j["seed"] = o.seed;
  j["max_length"] = o.max_length;
  j["truncation"] = o.truncation;
  j["on_bad_record"] = o.on_bad_record;
  constexpr std::size_t kRunIdLength = 32;  // hex digits: 128 bits
  return sha256_hex(j.dump()).substr(0, kRunIdLength);
}

// 5. Assemble and write each split, keeping input order within a split, into a temp directory
// that replaces the output directory as a whole once every file is written.
void write_dataset(const PreprocessOptions& o, const std::vector<std::pair<std::string, double>>& splits,
                   const Input& in, const DatasetMeta& meta, std::map<std::string, int>& label_index,
                   const std::vector<int>& assignment, const std::vector<tokenizer::Encoding>& enc) {
  const bool labelled = !o.label_field.empty();
  AtomicDir out_dir(o.output, kManifest);
  const std::string& dir = out_dir.temp_path();
  nlohmann::ordered_json manifest;
  manifest["hfkit_format"] = kFormatVersion;
  manifest["run_id"] = meta.run_id;
  manifest["labels"] = meta.label_names;
  manifest["multi_label"] = meta.multi_label;
  manifest["pairs"] = meta.has_pairs;
  manifest["text_field"] = o.text_field;
  if (meta.has_pairs) manifest["text_pair_field"] = o.text_pair_field;
  manifest["label_field"] = o.label_field;
  manifest["max_length"] = o.max_length;
  manifest["truncation"] = o.truncation;
  manifest["seed"] = o.seed;
  manifest["stratify"] = o.stratify;
  manifest["dedupe"] = o.dedupe;
  manifest["tokenizer_sha256"] = meta.tokenizer_sha256;
  manifest["source_sha256"] = meta.source_sha256;
  manifest["inputs"] = o.inputs;
  std::uint64_t total_tokens = 0, total_truncated = 0;
  for (std::size_t s = 0; s < splits.size(); ++s) {
    check_stop();
    SplitData d;
    // The split's records as JSONL beside the tensors, so `hf-predict` + `hf-eval` can score the
    // held-out split with its original texts and labels.
    AtomicFile text_copy(dir + "/" + splits[s].first + ".jsonl");
    std::vector<std::uint64_t> per_label(meta.label_names.size(), 0);
    std::uint64_t truncated = 0;
    for (std::size_t i = 0; i < in.examples.size(); ++i) {
      if (assignment[i] != static_cast<int>(s)) continue;
      const auto& e = enc[i];
      text_copy.write(in.examples[i].record);
      text_copy.write("\n");
      d.input_ids.insert(d.input_ids.end(), e.ids.begin(), e.ids.end());
      if (meta.has_pairs) d.token_type_ids.insert(d.token_type_ids.end(), e.type_ids.begin(), e.type_ids.end());
      d.offsets.push_back(static_cast<std::int64_t>(d.input_ids.size()));
      truncated += e.truncated;
      if (!labelled) continue;
      if (meta.multi_label) {
        std::size_t base = d.multi_hot.size();
        d.multi_hot.resize(base + meta.label_names.size(), 0.0f);
        for (const auto& l : in.examples[i].labels) {
          d.multi_hot[base + static_cast<std::size_t>(label_index[l])] = 1.0f;
          per_label[static_cast<std::size_t>(label_index[l])]++;
        }
      } else {
        int l = label_index[in.examples[i].labels[0]];
        d.labels.push_back(l);
        per_label[static_cast<std::size_t>(l)]++;
      }
    }
    write_split(dir, splits[s].first, d, meta);
    text_copy.commit();
    nlohmann::ordered_json info;
    info["file"] = splits[s].first + ".safetensors";
    info["records"] = splits[s].first + ".jsonl";
    info["examples"] = d.size();
    info["tokens"] = d.input_ids.size();
    info["truncated"] = truncated;
    nlohmann::ordered_json counts = nlohmann::ordered_json::object();
    for (std::size_t l = 0; l < meta.label_names.size(); ++l) counts[meta.label_names[l]] = per_label[l];
    if (labelled) info["label_counts"] = counts;
    manifest["splits"][splits[s].first] = info;
    total_tokens += d.input_ids.size();
    total_truncated += truncated;
    std::string label_summary;
    for (std::size_t l = 0; l < meta.label_names.size(); ++l)
      label_summary += (l ? ", " : " (") + meta.label_names[l] + " " + std::to_string(per_label[l]) +
                       (l + 1 == meta.label_names.size() ? ")" : "");
    log::info("{}: {} examples, {} tokens, {} truncated{}", splits[s].first, d.size(), d.input_ids.size(),
              truncated, label_summary);
  }
  manifest["examples"] = in.examples.size();
  manifest["tokens"] = total_tokens;
  manifest["duplicates_removed"] = in.duplicates;
  manifest["bad_records_skipped"] = in.bad;
  write_file_atomic(dir + "/" + kManifest, manifest.dump(2) + "\n");
  check_stop();
  out_dir.commit();
  log::info("wrote {}: {} examples, {} tokens, {} truncated, {} duplicates removed, {} bad records skipped",
            o.output, in.examples.size(), total_tokens, total_truncated, in.duplicates, in.bad);
}

Outcome run(const PreprocessOptions& o) {
  if (o.tokenizer.empty()) throw Error(ErrorKind::kUsage, "--tokenizer is required");
  if (o.output.empty()) throw Error(ErrorKind::kUsage, "--output is required (a directory, or - for stdout)");
  if (o.inputs.empty()) throw Error(ErrorKind::kUsage, "--input is required");
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(o.tokenizer);
  ThreadPool pool(o.threads);
  if (o.output == "-") return stream(o, tok, pool);

  const bool skip = skip_bad(o);
  const auto splits = parse_split_spec(o.split);
  Encoder encode(o, tok);

  Input in = read_examples(o, skip);
  DatasetMeta meta;
  meta.multi_label = in.multi_label;
  meta.has_pairs = !o.text_pair_field.empty();
  meta.max_length = o.max_length;
  meta.tokenizer_sha256 = tok.sha256();
  meta.source_sha256 = in.source_sha256;
  meta.run_id = run_id_of(o, meta);
  std::map<std::string, int> label_index = resolve_labels(o, in, meta);
  const std::vector<int> assignment = assign_to_splits(o, in, splits);
  const std::vector<tokenizer::Encoding> enc = tokenize_all(o, in, encode, pool);
  write_dataset(o, splits, in, meta, label_index, assignment, enc);
  return Outcome::kOk;
}

}  // namespace

// A stop signal ends the run wherever it is, with nothing committed (exit 128+N).
Outcome preprocess(const PreprocessOptions& o) {
  return stoppable([&] { return run(o); }, Outcome::kOk);
}

}  // namespace hf::data
