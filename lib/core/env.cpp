// Environment lookups (see env.h).
#include "core/env.h"

#include <cstdlib>

namespace hf {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

}  // namespace hf
