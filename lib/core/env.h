// The one reader of environment variables in lib/: a variable set to the empty string counts as
// unset, as it does for the AWS CLI and most Unix tools (`FOO= cmd` clears FOO).
#pragma once

#include <optional>
#include <string>

namespace hf {

// The value of `name`, or nullopt when it is unset or empty. Thread-safe as long as nobody calls
// setenv concurrently (lib/ never does).
std::optional<std::string> env(const char* name);

}  // namespace hf
