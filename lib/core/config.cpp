// yaml-cpp parsing of flat job configs; keys are HF TrainingArguments names (snake_case).
#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/file.h"

namespace hf {

ConfigFile ConfigFile::load(const std::string& path) {
  ConfigFile cfg;
  cfg.path_ = path;
  std::string text = read_file(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::kConfig, Where{path, e.mark.line + 1, ""}, e.msg);
  }
  if (root.IsNull()) return cfg;  // an empty file sets nothing
  if (!root.IsMap()) throw Error(ErrorKind::kConfig, Where{path, 1, ""}, "top level must be a mapping");
  for (const auto& kv : root) {
    std::string key = kv.first.as<std::string>();
    int line = kv.first.Mark().line + 1;
    ConfigEntry entry;
    entry.line = line;
    const YAML::Node& v = kv.second;
    if (v.IsScalar()) {
      entry.values.push_back(v.Scalar());
    } else if (v.IsSequence()) {
      for (const auto& item : v) {
        if (!item.IsScalar())
          throw Error(ErrorKind::kConfig, Where{path, line, key}, "list items must be scalars");
        entry.values.push_back(item.Scalar());
      }
    } else if (v.IsNull()) {
      continue;  // "key:" with no value means "use the default"
    } else {
      throw Error(ErrorKind::kConfig, Where{path, line, key}, "nested mappings are not supported");
    }
    if (cfg.entries_.count(key))
      throw Error(ErrorKind::kConfig, Where{path, line, key}, "duplicate key");
    cfg.entries_.emplace(std::move(key), std::move(entry));
  }
  return cfg;
}

}  // namespace hf
