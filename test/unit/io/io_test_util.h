// Shared helpers of the io unit tests: files with exact bytes, and "this call throws hf::Error of
// this kind with a message containing these fragments".
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace hf::test {

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Runs fn; it must throw hf::Error of `kind` whose message contains every fragment. Returns the
// message (empty when it did not throw).
inline std::string expect_error(const std::function<void()>& fn, ErrorKind kind,
                                std::initializer_list<std::string> fragments) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK_MESSAGE(static_cast<int>(e.kind()) == static_cast<int>(kind), "kind of: " << what);
    for (const auto& f : fragments) CHECK_MESSAGE(what.find(f) != std::string::npos, "'" << f << "' not in: " << what);
    return what;
  }
  FAIL_CHECK("expected an hf::Error containing " << *fragments.begin());
  return {};
}

}  // namespace hf::test
