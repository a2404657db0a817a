// A thread-safe HTTP client over libcurl for the S3 backend and the credential sources: a pool of
// easy handles so each worker reuses its keep-alive connection (and TLS session), TLS
// verification on unless told otherwise, connect and stall timeouts, request bodies from memory
// or a file range, response bodies into memory or a file at an offset. It reports transport and
// HTTP failures in the response; retrying is the caller's business. Internal to lib/storage.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hf::storage {

struct HttpSettings {
  bool verify_ssl = true;
  double connect_timeout_s = 10;
  double read_timeout_s = 60;                // no byte moved for this long -> timed out
  const std::atomic<bool>* cancel = nullptr; // aborts transfers when it becomes true
};

struct HttpRequest {
  std::string method = "GET";  // GET HEAD PUT POST DELETE
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  // Body: `body` in memory, or `body_fd` >= 0 with body_size bytes from body_offset (pread).
  std::string_view body;
  int body_fd = -1;
  std::uint64_t body_offset = 0;
  std::uint64_t body_size = 0;
  // A 2xx body goes to out_fd at out_offset (pwrite) when out_fd >= 0, at most out_limit bytes
  // (more is an error); other bodies (error XML) go to memory.
  int out_fd = -1;
  std::uint64_t out_offset = 0;
  std::uint64_t out_limit = 0;
  // Called with each chunk of a 2xx body written to out_fd, in order.
  std::function<void(const char*, std::size_t)> on_body;
  std::atomic<std::uint64_t>* progress = nullptr;  // bytes sent + received are added here
  bool ignore_cancel = false;  // clean-up requests (abort multipart) run even after a cancel
};

struct HttpResponse {
  long status = 0;          // 0: no HTTP answer, see curl_code/error
  int curl_code = 0;        // CURLcode
  std::string error;        // transport error text ("" on success)
  int write_errno = 0;      // a local write to out_fd failed (disk full...): not retryable
  bool overflow = false;    // the server sent more than out_limit
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::uint64_t body_bytes = 0;  // bytes written to out_fd

  // Value of header `name` (lower-case), "" when absent.
  std::string header(std::string_view name) const;
  bool ok() const { return status >= 200 && status < 300 && curl_code == 0; }
};

// Transport failures worth retrying (connect refused, reset, timeouts, truncated body...).
bool is_retryable_transport(int curl_code);
// Connect-phase failures (nothing reached the server): "unreachable".
bool is_connect_failure(int curl_code);
bool is_timeout(int curl_code);

class HttpClient {
 public:
  explicit HttpClient(HttpSettings settings);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs one request on a pooled handle. Never throws for HTTP or transport failures.
  HttpResponse perform(const HttpRequest& request);
  const HttpSettings& settings() const { return settings_; }

 private:
  void* acquire();
  void release(void* handle);

  HttpSettings settings_;
  std::mutex mu_;
  std::vector<void*> free_;
};

// Percent-decoding (for ListObjectsV2 with encoding-type=url): "%2F" -> "/", '+' kept.
std::string url_decode(std::string_view s);

}  // namespace hf::storage
