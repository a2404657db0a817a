// RecordReader: JSON Lines, CSV/TSV (RFC 4180) and plain lines over a LineSource, with
// error-or-skip handling of bad records. The rules are documented in io.h.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/log.h"
#include "io/input.h"
#include "io/io.h"

namespace hf::io {
namespace {

// A bad record: carries the line it was found on so the reader can report or skip it.
struct BadRecord {
  std::int64_t line;
  std::string message;
};

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// nlohmann's parse_error text minus its "[json.exception.parse_error.101] parse error at line 1,
// column 7: " prefix: the line is ours, the column becomes a byte offset.
std::string json_reason(const nlohmann::json::parse_error& e) {
  std::string_view what = e.what();
  auto colon = what.find(": ", what.find("column"));
  std::string_view reason = colon == std::string_view::npos ? what : what.substr(colon + 2);
  return fmt::format("invalid JSON at byte {}: {}", e.byte, reason);
}

const char* json_type_name(const nlohmann::ordered_json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float: return "a number";
    default: return "something else";
  }
}

// The deepest nesting of arrays and objects in a JSON text (outside strings); stops counting once
// past `limit`. Run before parsing, so a hostile line costs one linear scan.
int json_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

class RecordReader::Impl {
 public:
  Impl(const std::string& path, Format format, ReaderOptions options)
      : source_(path), format_(format), options_(options), delim_(format == Format::kTsv ? '\t' : ',') {}

  std::optional<Record> next() {
    for (;;) {
      try {
        switch (format_) {
          case Format::kLines: {
            std::string_view line;
            if (!next_line(line)) return std::nullopt;
            Record r{source_.line_number(), nlohmann::ordered_json::object(), {}};
            r.value["text"] = std::string(line);
            return r;
          }
          case Format::kJsonl: return next_jsonl();
          case Format::kCsv:
          case Format::kTsv: return next_csv();
        }
        return std::nullopt;
      } catch (const BadRecord& bad) {
        handle_bad(bad);
      }
    }
  }

  // Lines mode: validates UTF-8 and skips or throws on a bad line.
  bool next_line(std::string_view& line) {
    for (;;) {
      if (!source_.next(line)) return false;
      std::size_t bad = find_invalid_utf8(line);
      if (bad == std::string_view::npos) return true;
      handle_bad(BadRecord{source_.line_number(), utf8_message(bad)});
    }
  }

  std::int64_t line_number() const { return source_.line_number(); }
  std::int64_t bad_records() const { return bad_records_; }
  const std::string& name() const { return source_.name(); }
  const std::vector<std::string>& columns() const { return columns_; }
  Format format() const { return format_; }

 private:
  static std::string utf8_message(std::size_t offset) {
    return fmt::format("invalid UTF-8 at byte {}", offset + 1);
  }

  void handle_bad(const BadRecord& bad) {
    if (options_.on_bad == OnBad::kError) throw Error(ErrorKind::kDataErr, Where{name(), bad.line, ""}, bad.message);
    ++bad_records_;
    if (bad_records_ <= options_.max_bad_logged) {
      log::warn("{}:{}: {} (record skipped)", name(), bad.line, bad.message);
      if (bad_records_ == options_.max_bad_logged)
        log::warn("{}: further bad records are skipped without a message", name());
    }
  }

  std::optional<Record> next_jsonl() {
    std::string_view line;
    do {
      if (!source_.next(line)) return std::nullopt;
    } while (is_blank(line));
    const std::int64_t no = source_.line_number();
    std::size_t bad = find_invalid_utf8(line);
    if (bad != std::string_view::npos) throw BadRecord{no, utf8_message(bad)};
    // nlohmann stops at a NUL as if the input ended there; JSON text never holds a raw NUL.
    if (auto nul = line.find('\0'); nul != std::string_view::npos)
      throw BadRecord{no, fmt::format("invalid JSON at byte {}: NUL byte", nul + 1)};
    // nlohmann skips a UTF-8 byte order mark before the value; the text kept for passthrough
    // must not carry it either (it would be written back in the middle of an output file).
    if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    if (json_depth(line, kMaxJsonDepth) > kMaxJsonDepth)
      throw BadRecord{no, fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth)};
    Record r{no, {}, std::string(line)};
    try {
      r.value = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw BadRecord{no, json_reason(e)};
    } catch (const nlohmann::json::exception& e) {
      // Valid syntax nlohmann cannot hold, e.g. a number beyond double's range (3e957): out_of_range.
      std::string_view what = e.what();
      auto bracket = what.find("] ");
      throw BadRecord{no, fmt::format("invalid JSON: {}",
                                      bracket == std::string_view::npos ? what : what.substr(bracket + 2))};
    }
    if (!r.value.is_object())
      throw BadRecord{no, fmt::format("expected a JSON object (one per line), got {}", json_type_name(r.value))};
    return r;
  }

  // Next physical line for CSV, UTF-8 checked. False at the end of the input.
  bool csv_line(std::string_view& line) {
    if (!source_.next(line)) return false;
    std::size_t bad = find_invalid_utf8(line);
    if (bad != std::string_view::npos) throw BadRecord{source_.line_number(), utf8_message(bad)};
    return true;
  }

  // Splits the next record into fields_. Returns false at the end of the input.
  bool parse_csv_record(std::int64_t& start_line) {
    std::string_view line;
    do {
      if (!csv_line(line)) return false;
    } while (line.empty() || line == "\r");
    start_line = source_.line_number();
    fields_.clear();
    std::string field;
    enum class State { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted } state = State::kFieldStart;
    for (;;) {
      for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        switch (state) {
          case State::kFieldStart:
            if (c == '"') {
              state = State::kQuoted;
            } else if (c == delim_) {
              fields_.push_back(std::move(field));
              field.clear();
            } else {
              field += c;
              state = State::kUnquoted;
            }
            break;
          case State::kUnquoted:
            if (c == delim_) {
              fields_.push_back(std::move(field));
              field.clear();
              state = State::kFieldStart;
            } else {
              field += c;
            }
            break;
          case State::kQuoted:
            if (c == '"') {
              state = State::kQuoteInQuoted;
            } else {
              field += c;
            }
            break;
          case State::kQuoteInQuoted:
            if (c == '"') {
              field += '"';
              state = State::kQuoted;
            } else if (c == delim_) {
              fields_.push_back(std::move(field));
              field.clear();
              state = State::kFieldStart;
            } else if (!(c == '\r' && i + 1 == line.size())) {
              throw BadRecord{source_.line_number(),
                              fmt::format("field {}: unexpected character after the closing quote "
                                          "(a quote inside a quoted field is written \"\")",
                                          fields_.size() + 1)};
            }
            break;
        }
      }
      if (state != State::kQuoted) break;
      // A newline inside quotes belongs to the field: the record continues on the next line.
      field += '\n';
      if (!csv_line(line))
        throw BadRecord{start_line, fmt::format("field {}: quoted field not closed before the end of the input",
                                                fields_.size() + 1)};
    }
    // CRLF: the CR ends the record, it is not data (a quoted field's CR was handled above).
    if (state == State::kUnquoted && !field.empty() && field.back() == '\r') field.pop_back();
    fields_.push_back(std::move(field));
    return true;
  }

  std::optional<Record> next_csv() {
    std::int64_t line = 0;
    if (!header_done_) {
      header_done_ = true;
      try {
        if (!parse_csv_record(line)) return std::nullopt;
      } catch (const BadRecord& bad) {
        throw Error(ErrorKind::kDataErr, Where{name(), bad.line, ""}, "header: " + bad.message);
      }
      std::set<std::string_view> seen;
      for (const auto& f : fields_)
        if (!seen.insert(f).second)
          throw Error(ErrorKind::kDataErr, Where{name(), line, ""},
                      fmt::format("header: column \"{}\" appears twice", f));
      columns_ = fields_;
    }
    if (!parse_csv_record(line)) return std::nullopt;
    if (fields_.size() != columns_.size())
      throw BadRecord{line, fmt::format("expected {} fields (as in the header), got {}", columns_.size(),
                                        fields_.size())};
    Record r{line, nlohmann::ordered_json::object(), {}};
    for (std::size_t i = 0; i < fields_.size(); ++i) r.value[columns_[i]] = std::move(fields_[i]);
    return r;
  }

  detail::LineSource source_;
  Format format_;
  ReaderOptions options_;
  char delim_;
  std::int64_t bad_records_ = 0;
  bool header_done_ = false;
  std::vector<std::string> columns_;
  std::vector<std::string> fields_;
};

RecordReader::RecordReader(std::string path, Format format, ReaderOptions options)
    : impl_(std::make_unique<Impl>(path, format, options)) {}
RecordReader::~RecordReader() = default;
RecordReader::RecordReader(RecordReader&&) noexcept = default;
RecordReader& RecordReader::operator=(RecordReader&&) noexcept = default;

std::optional<Record> RecordReader::next() { return impl_->next(); }

bool RecordReader::next_line(std::string_view& line) {
  if (impl_->format() != Format::kLines)
    throw Error(ErrorKind::kInternal, "RecordReader::next_line needs Format::kLines");
  return impl_->next_line(line);
}

std::int64_t RecordReader::line_number() const { return impl_->line_number(); }
std::int64_t RecordReader::bad_records() const { return impl_->bad_records(); }
const std::string& RecordReader::display_name() const { return impl_->name(); }
const std::vector<std::string>& RecordReader::columns() const { return impl_->columns(); }

std::vector<Record> read_all(const std::string& path, Format format, ReaderOptions options) {
  RecordReader reader(path, format, options);
  std::vector<Record> out;
  while (auto r = reader.next()) out.push_back(std::move(*r));
  return out;
}

}  // namespace hf::io
