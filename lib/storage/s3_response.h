// Reading an S3 answer: what it means for the request (classify: success, retry, or which error)
// and numbers taken from it. Pure functions, table-tested in test/unit/storage. Retry rules follow
// the SDKs' "standard" mode: https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
// Internal to lib/storage.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "storage/http.h"

namespace hf::storage {

// The request an answer belongs to, as far as judging the answer needs it.
struct CallContext {
  std::string_view what;      // "PUT s3://bucket/key": every message starts with it
  std::string_view endpoint;  // host[:port] named when it is unreachable
  bool allow_404 = false;     // a 404 is an answer (HEAD of an object that may not exist)
  std::string_view problem;   // what the caller found wrong with a 2xx answer ("" = nothing)
};

// What one answer means.
struct Verdict {
  enum class Action { kAccept, kRetry, kFail };
  Action action = Action::kFail;
  ErrorKind kind = ErrorKind::kInternal;  // the error when not accepted
  std::string message;                    // one line, starting with CallContext::what
  bool throttled = false;                 // 429/503/SlowDown: back off harder
  bool refresh_credentials = false;       // expired credentials: fetch new ones before retrying
  bool clock_skewed = false;              // RequestTimeTooSkewed: correct the clock from Date first
};

// Maps an answer's HTTP status, curl code and S3 error code (from the XML body) to a Verdict.
// Does not look at write_errno (a local failure, not the store's answer).
Verdict classify(const HttpResponse& response, const CallContext& context);

// A decimal count from a response field (Size, Content-Length, a part count). Throws
// Error(kDataErr, "<where>: field "<field>": expected a byte count, got '<text>'") for anything
// but plain digits that fit in 64 bits.
std::uint64_t parse_count(std::string_view text, std::string_view where, std::string_view field);

}  // namespace hf::storage
