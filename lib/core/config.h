// YAML job configs: a flat mapping of option name -> value(s), with the line each came from so a
// typo or bad value is reported as "job.yaml:7: field "lerning_rate": unknown key".
// Precedence (flag > env > file > default) is applied by lib/cli, which knows the flags.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace hf {

struct ConfigEntry {
  std::vector<std::string> values;  // one for a scalar, several for a YAML sequence
  int line = 0;                     // 1-based line in the file
};

class ConfigFile {
 public:
  // Throws Error(kNoInput) when missing, Error(kConfig) with file:line for malformed YAML, a
  // top level that is not a mapping, or nested mappings.
  static ConfigFile load(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, ConfigEntry>& entries() const { return entries_; }

 private:
  std::string path_;
  std::map<std::string, ConfigEntry> entries_;
};

}  // namespace hf
