// Passthrough output of JSONL records: members are split out of the line's own text instead of
// re-serialising the parsed value, so numbers keep every digit and nothing recurses on nesting.
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "io/io.h"

namespace hf::io {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_ws(std::string_view s, std::size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// `i` at an opening quote; returns the index just past the closing one.
std::size_t skip_string(std::string_view s, std::size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return s.size();
}

// `i` at the first byte of a value; returns the index just past it. Iterative: the depth of
// nesting costs nothing here.
std::size_t skip_value(std::string_view s, std::size_t i) {
  if (i < s.size() && s[i] == '"') return skip_string(s, i);
  if (i < s.size() && (s[i] == '{' || s[i] == '[')) {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return i;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !is_ws(s[i])) ++i;
  return i;
}

// A member key's text ("\"te\\u0078t\"") as the string it stands for ("text").
std::string decode_key(std::string_view key) {
  if (key.find('\\') == std::string_view::npos) return std::string(key.substr(1, key.size() - 2));
  return nlohmann::json::parse(key).get<std::string>();
}

}  // namespace

std::vector<std::pair<std::string_view, std::string_view>> object_members(std::string_view object) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  std::size_t i = skip_ws(object, 0);
  if (i >= object.size() || object[i] != '{') return out;
  i = skip_ws(object, i + 1);
  while (i < object.size() && object[i] == '"') {
    const std::size_t key_end = skip_string(object, i);
    const std::string_view key = object.substr(i, key_end - i);
    i = skip_ws(object, key_end);
    if (i < object.size() && object[i] == ':') i = skip_ws(object, i + 1);
    const std::size_t value_end = skip_value(object, i);
    out.emplace_back(key, object.substr(i, value_end - i));
    i = skip_ws(object, value_end);
    if (i < object.size() && object[i] == ',') i = skip_ws(object, i + 1);
  }
  return out;
}

void append_passthrough(std::string& out, const Record& record, std::span<const std::string_view> drop,
                        std::string_view extra) {
  const auto dropped = [&](const std::string& key) { return std::find(drop.begin(), drop.end(), key) != drop.end(); };
  out += '{';
  bool first = true;
  if (record.raw.empty()) {
    // CSV/TSV/lines: every value is a string, so the parsed record is exact.
    for (const auto& [key, value] : record.value.items()) {
      if (dropped(key)) continue;
      if (!first) out += ',';
      first = false;
      append_json_string(out, key);
      out += ':';
      append_json_string(out, value.get_ref<const std::string&>());
    }
  } else {
    const auto members = object_members(record.raw);
    std::vector<std::string> keys;
    keys.reserve(members.size());
    std::unordered_map<std::string, std::size_t> last;  // key -> index of its last value
    for (std::size_t i = 0; i < members.size(); ++i) {
      keys.push_back(decode_key(members[i].first));
      last[keys.back()] = i;
    }
    std::unordered_set<std::string_view> written;
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (dropped(keys[i]) || !written.insert(keys[i]).second) continue;
      if (!first) out += ',';
      first = false;
      out += members[i].first;
      out += ':';
      out += members[last[keys[i]]].second;
    }
  }
  if (!extra.empty()) {
    if (!first) out += ',';
    out += extra;
  }
  out += '}';
}

}  // namespace hf::io
