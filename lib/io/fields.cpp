// Input format names and record field accessors with precise errors.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "io/io.h"

namespace hf::io {
namespace {

Error field_error(const Record& record, std::string_view field, const std::string& file, std::string_view what) {
  return Error(ErrorKind::kDataErr, Where{file, record.line, std::string(field)}, what);
}

const nlohmann::ordered_json& require_field(const Record& record, std::string_view field, const std::string& file) {
  auto it = record.value.find(field);
  if (it == record.value.end()) throw field_error(record, field, file, "missing");
  return *it;
}

}  // namespace

Format format_from_path(const std::string& path) {
  std::string ext;
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "jsonl" || ext == "json" || ext == "ndjson") return Format::kJsonl;
  if (ext == "csv") return Format::kCsv;
  if (ext == "tsv") return Format::kTsv;
  if (ext == "txt") return Format::kLines;
  throw Error(ErrorKind::kUsage,
              fmt::format("cannot tell the format of '{}' from its name (.jsonl .json .ndjson .csv .tsv .txt); "
                          "give it with --format jsonl|csv|tsv|lines",
                          path));
}

std::string_view format_name(Format format) {
  switch (format) {
    case Format::kJsonl: return "jsonl";
    case Format::kCsv: return "csv";
    case Format::kTsv: return "tsv";
    case Format::kLines: return "lines";
  }
  return "?";
}

std::string_view require_string(const Record& record, std::string_view field, const std::string& file) {
  const auto& v = require_field(record, field, file);
  if (!v.is_string()) throw field_error(record, field, file, "expected a string");
  return v.get_ref<const std::string&>();
}

Labels require_labels(const Record& record, std::string_view field, const std::string& file) {
  const auto& v = require_field(record, field, file);
  Labels out;
  if (v.is_string()) {
    out.values.push_back(v.get<std::string>());
  } else if (v.is_number_integer()) {
    out.values.push_back(v.dump());
    out.is_integer = true;
  } else if (v.is_array()) {
    out.is_list = true;
    for (const auto& item : v) {
      if (!item.is_string()) throw field_error(record, field, file, "expected a list of strings");
      out.values.push_back(item.get<std::string>());
    }
  } else {
    throw field_error(record, field, file, "expected a string, an integer or a list of strings");
  }
  return out;
}

}  // namespace hf::io
