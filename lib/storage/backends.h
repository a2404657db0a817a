// The two Backend implementations and helpers they share. Internal to lib/storage.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cancel.h"
#include "core/fd.h"
#include "storage/credentials.h"
#include "storage/http.h"
#include "storage/storage.h"

namespace hf::storage {

// Opens `path` read-only; throws Error(kIo/kNoInput) naming it.
UniqueFd open_read(const std::string& path);

// Hashes of a byte range of a file, read once.
struct RangeHashes {
  std::string sha256_hex;
  std::string md5_raw;  // only when asked for
};
RangeHashes hash_fd_range(int fd, std::uint64_t offset, std::uint64_t size, bool want_md5,
                          const std::atomic<bool>* cancel);

// A downloaded object's content does not match its recorded checksum (kIo). Retried by
// get_to_fd() from scratch a few times before it surfaces.
class IntegrityError : public Error {
 public:
  explicit IntegrityError(const std::string& what) : Error(ErrorKind::kIo, what) {}
};

// The storage name of hf::throw_if_cancelled, still called by checkpoint.cpp (owned by training).
inline void check_cancel(const std::atomic<bool>* cancel) { throw_if_cancelled(cancel); }

class S3Backend final : public Backend {
 public:
  S3Backend(Url root, const Options& options);
  const Url& root() const override { return root_; }
  std::vector<ObjectInfo> list(std::string_view sub) override;
  DirListing list_dir(std::string_view sub) override;
  std::optional<ObjectInfo> head(std::string_view key) override;
  ObjectInfo put_file(const std::string& local_path, std::string_view key,
                      const std::string& sha256) override;
  ObjectInfo put_bytes(std::string_view data, std::string_view key) override;
  Fetched get_to_fd(const ObjectInfo& expected, int fd) override;
  std::string get_bytes(std::string_view key) override;
  void remove(const std::vector<std::string>& keys) override;
  std::string presign(std::string_view key, std::chrono::seconds expires,
                      std::string_view method) override;
  std::uint64_t bytes_transferred() const override { return bytes_.load(); }

  std::string credential_source() { return credentials_.source(); }
  const std::string& region() const { return region_; }

  struct Call;

 private:
  // One signed request with retries: sign and perform, classify() the answer, back off, again.
  // Returns the accepted answer; throws the last verdict's Error, or Cancelled.
  HttpResponse send(Call& call);
  HttpRequest signed_request(const Call& call);
  void learn_clock_skew(const HttpResponse& resp);
  std::string build_url(const std::string& key, const sigv4::Pairs& query, std::string* host,
                        std::string* path) const;
  std::string describe(std::string_view key) const;
  std::string key_relative(const std::string& full_key) const;  // inverse of root_.key_for
  ObjectInfo put_single(int fd, std::uint64_t size, const std::string& key, const std::string& sha256);
  // Parallel parts; `before_complete` runs (and may throw) before the upload is completed. Any
  // failure aborts the upload.
  ObjectInfo put_multipart(int fd, std::uint64_t size, const std::string& key, const std::string& sha256,
                           const std::function<void()>& before_complete);
  void abort_multipart(const std::string& key, const std::string& upload_id);
  // What the store recorded about an object, to check a download against.
  struct Recorded {
    std::string sha256;       // x-amz-meta-sha256, "" when absent
    std::string etag;         // without quotes
    std::uint64_t parts = 0;  // N of a multipart ETag "<md5>-N", else 0
    bool hidden_md5 = false;  // SSE-KMS/SSE-C: the ETag is no MD5 of the content
    bool md5_etag() const;    // a single-part ETag that is the content's MD5
  };
  // What was computed from the bytes written.
  struct Computed {
    std::string sha256_hex;
    std::string md5_raw;                // whole content; "" when not computed
    std::vector<std::string> part_md5;  // raw MD5 per multipart part; empty when not computed
  };
  // One download attempt: get_single below the multipart threshold, else get_ranged; both end in
  // verify(), which throws IntegrityError on a mismatch.
  Fetched get_once(const ObjectInfo& expected, int fd);
  Fetched get_single(const std::string& key, std::uint64_t size, Recorded rec, int fd);
  Fetched get_ranged(const std::string& key, std::uint64_t size, Recorded rec, int fd);
  static Fetched verify(const std::string& what, const Recorded& rec, const Computed& got);
  ObjectInfo info_from_headers(const std::string& key, const HttpResponse& resp) const;
  std::uint64_t multipart_part_size(const std::string& key);
  std::vector<ObjectInfo> list_pages(const std::string& prefix, bool delimited,
                                     std::vector<std::string>* prefixes);

  Url root_;
  Options options_;
  std::string region_;
  std::string scheme_;     // "https" / "http"
  std::string host_;       // endpoint host[:port] (port only when not the scheme's default)
  std::string base_path_;  // "" or "/path" of a custom endpoint
  bool path_style_ = false;
  HttpClient http_;
  CredentialProvider credentials_;
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<long> clock_skew_s_{0};  // server time - our time, learnt from RequestTimeTooSkewed
};

class LocalBackend final : public Backend {
 public:
  LocalBackend(Url root, const Options& options);
  const Url& root() const override { return root_; }
  std::vector<ObjectInfo> list(std::string_view sub) override;
  DirListing list_dir(std::string_view sub) override;
  std::optional<ObjectInfo> head(std::string_view key) override;
  ObjectInfo put_file(const std::string& local_path, std::string_view key,
                      const std::string& sha256) override;
  ObjectInfo put_bytes(std::string_view data, std::string_view key) override;
  Fetched get_to_fd(const ObjectInfo& expected, int fd) override;
  std::string get_bytes(std::string_view key) override;
  void remove(const std::vector<std::string>& keys) override;
  std::string presign(std::string_view key, std::chrono::seconds expires,
                      std::string_view method) override;
  std::uint64_t bytes_transferred() const override { return bytes_.load(); }

 private:
  std::string path_of(std::string_view key) const;
  Url root_;
  Options options_;
  std::atomic<std::uint64_t> bytes_{0};
};

// A parsed S3 endpoint URL (libcurl's URL API): what the requests are built from.
struct Endpoint {
  std::string scheme;     // "http" / "https"
  std::string host;       // host[:port], the port only when not the scheme's default ([v6] kept)
  std::string base_path;  // "" or "/path" without a trailing '/', decoded
  bool had_userinfo = false;  // "u:pw@" was given: dropped (S3 signs requests; never basic auth)
};
// Throws Error(kUsage) naming the URL with its password redacted.
Endpoint parse_endpoint(std::string_view url);

// Region the S3 backend uses: explicit, AWS_REGION, AWS_DEFAULT_REGION, profile, us-east-1.
std::string resolve_region(const Options& options);
// Endpoint: explicit, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, "" (AWS).
std::string resolve_endpoint(const Options& options);

}  // namespace hf::storage
