// Formatting of error context and errno mapping.
#include "core/error.h"

#include <cerrno>
#include <cstring>

namespace hf {

std::string format_where(const Where& where) {
  std::string out;
  if (!where.file.empty()) {
    out += where.file;
    if (where.line > 0) out += ":" + std::to_string(where.line);
    out += ": ";
  }
  if (!where.field.empty()) out += "field \"" + where.field + "\": ";
  return out;
}

Error::Error(ErrorKind kind, const Where& where, std::string_view message)
    : std::runtime_error(format_where(where) + std::string(message)), kind_(kind) {}

void throw_errno(ErrorKind fallback, const std::string& what, const std::string& path, int err) {
  ErrorKind kind = fallback;
  // A missing input and a permission problem have their own exit codes whatever the operation.
  if (err == ENOENT && fallback != ErrorKind::kCantCreate) kind = ErrorKind::kNoInput;
  if (err == EACCES || err == EPERM) kind = ErrorKind::kNoPerm;
  throw Error(kind, what + " '" + path + "': " + std::strerror(err));
}

}  // namespace hf
