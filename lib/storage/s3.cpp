// S3 backend: endpoint and addressing, signed requests with retries (exponential backoff with full
// jitter), ListObjectsV2 pagination, single and multipart uploads (parallel parts, aborted on
// failure), ranged parallel downloads pinned to the ETag, and download verification.
// API: https://docs.aws.amazon.com/AmazonS3/latest/API/ ; retries follow the SDKs' "standard"
// mode: https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <thread>

#include "core/backoff.h"
#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "storage/backends.h"
#include "storage/crypto.h"
#include "storage/s3_response.h"
#include "storage/xml.h"

namespace hf::storage {

struct S3Backend::Call {
  std::string method = "GET";
  std::string key;  // full key; "" = the bucket itself
  sigv4::Pairs query;
  sigv4::Pairs headers;  // signed
  std::string_view body;
  int body_fd = -1;
  std::uint64_t body_offset = 0;
  std::uint64_t body_size = 0;
  std::string payload_sha256 = sigv4::kEmptySha256;
  int out_fd = -1;
  std::uint64_t out_offset = 0;
  std::uint64_t out_limit = 0;
  std::function<void(const char*, std::size_t)> on_body;
  std::function<void()> before_attempt;                // resets per-attempt state (hashers)
  std::function<std::string(const HttpResponse&)> check;  // 2xx answer: "" ok, else a retryable problem
  bool allow_404 = false;
  bool ignore_cancel = false;  // clean-up calls that must run after a cancel
  std::string what;  // "PUT s3://bucket/key" for messages
};

namespace {

constexpr Backoff kRetryBackoff{0.1, 20.0};     // seconds: first cap, doubled per attempt, at most
constexpr Backoff kThrottleBackoff{0.5, 20.0};  // SlowDown/429: back off harder
constexpr std::uint64_t kMinPartSize = 5ull << 20;  // S3 minimum (all parts but the last)
constexpr std::uint64_t kMaxParts = 10000;
constexpr std::size_t kDeleteBatch = 1000;     // DeleteObjects limit
constexpr std::size_t kHashChunk = 1 << 20;
constexpr int kVerifyAttempts = 3;
constexpr std::uint64_t kMaxRange = 256ull << 20;  // largest ranged GET  // whole-object downloads when the content fails its checksum

std::string strip_quotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

bool is_ip_or_localhost(const std::string& host) {
  std::string h = host;
  if (!h.empty() && h.front() == '[') return true;  // IPv6 literal
  h = h.substr(0, h.find(':'));
  if (h == "localhost") return true;
  return !h.empty() && std::all_of(h.begin(), h.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

bool is_md5_etag(const std::string& etag) {
  return etag.size() == 32 && std::all_of(etag.begin(), etag.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// "<32 hex>-N" -> N; 0 otherwise.
std::uint64_t multipart_etag_parts(const std::string& etag) {
  std::size_t dash = etag.find('-');
  if (dash != 32 || !is_md5_etag(etag.substr(0, 32))) return 0;
  std::uint64_t parts = 0;
  const char* end = etag.data() + etag.size();
  auto [p, ec] = std::from_chars(etag.data() + 33, end, parts);
  return ec == std::errc() && p == end ? parts : 0;  // not ours to judge: then it is just unverifiable
}

bool sse_hides_md5(const HttpResponse& r) {
  return r.header("x-amz-server-side-encryption") == "aws:kms" ||
         r.header("x-amz-server-side-encryption") == "aws:kms:dsse" ||
         !r.header("x-amz-server-side-encryption-customer-algorithm").empty();
}

}  // namespace

UniqueFd open_read(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(ErrorKind::kIo, "open", path, errno);
  return UniqueFd(fd);
}

RangeHashes hash_fd_range(int fd, std::uint64_t offset, std::uint64_t size, bool want_md5,
                          const std::atomic<bool>* cancel) {
  Sha256 sha;
  Md5 md5;
  std::string buf(kHashChunk, '\0');
  std::uint64_t done = 0;
  while (done < size) {
    throw_if_cancelled(cancel);
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - done));
    ssize_t r = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno(ErrorKind::kIo, "read", "fd " + std::to_string(fd), errno);
    if (r == 0) throw Error(ErrorKind::kIo, "file shrank while reading");
    sha.update(buf.data(), static_cast<std::size_t>(r));
    if (want_md5) md5.update(buf.data(), static_cast<std::size_t>(r));
    done += static_cast<std::uint64_t>(r);
  }
  RangeHashes out;
  out.sha256_hex = sha.hex_digest();
  if (want_md5) out.md5_raw = md5.raw_digest();
  return out;
}

std::string resolve_region(const Options& options) {
  if (!options.region.empty()) return options.region;
  std::string r = env("AWS_REGION").value_or(env("AWS_DEFAULT_REGION").value_or(""));
  if (r.empty()) r = load_profile(profile_name(options.profile)).region;
  return r.empty() ? "us-east-1" : r;
}

std::string resolve_endpoint(const Options& options) {
  if (!options.endpoint_url.empty()) return options.endpoint_url;
  return env("AWS_ENDPOINT_URL_S3").value_or(env("AWS_ENDPOINT_URL").value_or(""));
}

S3Backend::S3Backend(Url root, const Options& options)
    : root_(std::move(root)),
      options_(options),
      region_(resolve_region(options)),
      http_(HttpSettings{options.verify_ssl, options.connect_timeout_s, options.read_timeout_s, options.cancel}),
      credentials_(CredentialOptions{options.profile, region_,
                                     HttpSettings{options.verify_ssl, options.connect_timeout_s,
                                                  options.read_timeout_s, options.cancel},
                                     std::chrono::seconds(300)}) {
  if (options_.max_attempts < 1) options_.max_attempts = 1;
  std::string endpoint = resolve_endpoint(options);
  if (endpoint.empty()) {
    scheme_ = "https";
    host_ = "s3." + region_ + ".amazonaws.com";
    // Dotted bucket names break the *.s3 wildcard certificate in virtual-hosted style.
    path_style_ = options.path_style || root_.bucket.find('.') != std::string::npos;
  } else {
    Endpoint e = parse_endpoint(endpoint);
    if (e.had_userinfo)
      log::warn("ignoring the user name and password in the endpoint URL: S3 requests are signed with AWS credentials");
    scheme_ = e.scheme;
    host_ = e.host;
    base_path_ = e.base_path;
    path_style_ = options.path_style || is_ip_or_localhost(host_) || root_.bucket.find('.') != std::string::npos;
  }
  if (!options.verify_ssl) log::warn("TLS certificate verification is off (--no-verify-ssl)");
}

std::string S3Backend::key_relative(const std::string& full_key) const {
  return root_.prefix.empty() ? full_key : full_key.substr(std::min(full_key.size(), root_.prefix.size() + 1));
}

std::string S3Backend::describe(std::string_view key) const {
  return "s3://" + root_.bucket + "/" + std::string(key);
}

std::string S3Backend::build_url(const std::string& key, const sigv4::Pairs& query, std::string* host,
                                 std::string* path) const {
  *host = path_style_ ? host_ : root_.bucket + "." + host_;
  *path = base_path_;
  if (path_style_) {
    *path += "/" + root_.bucket;
    if (!key.empty()) *path += "/" + key;
  } else {
    *path += "/" + key;
  }
  std::string url = scheme_ + "://" + *host + sigv4::uri_encode(*path, true);
  if (!query.empty()) url += "?" + sigv4::canonical_query(query);
  return url;
}

HttpRequest S3Backend::signed_request(const Call& call) {
  HttpRequest req;
  req.method = call.method;
  std::string host, path;
  req.url = build_url(call.key, call.query, &host, &path);
  req.headers = call.headers;
  req.headers.emplace_back("Host", host);
  if (!options_.anonymous) {
    sigv4::Credentials creds = credentials_.get();
    sigv4::Request sreq{call.method, host, path, call.query, call.headers};
    auto now = std::chrono::system_clock::now() + std::chrono::seconds(clock_skew_s_.load());
    for (auto& h : sigv4::sign_headers(sreq, call.payload_sha256, creds, region_, "s3", sigv4::amz_date(now)))
      req.headers.push_back(std::move(h));
  }
  req.body = call.body;
  req.body_fd = call.body_fd;
  req.body_offset = call.body_offset;
  req.body_size = call.body_size;
  req.out_fd = call.out_fd;
  req.out_offset = call.out_offset;
  req.out_limit = call.out_limit;
  req.on_body = call.on_body;
  req.progress = &bytes_;
  req.ignore_cancel = call.ignore_cancel;
  return req;
}

void S3Backend::learn_clock_skew(const HttpResponse& resp) {
  std::string date = resp.header("date");
  struct tm tm{};
  if (date.empty() || strptime(date.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return;
  clock_skew_s_.store(static_cast<long>(timegm(&tm)) - static_cast<long>(std::time(nullptr)));
  log::warn("local clock is off by {} s from the S3 endpoint; correcting", clock_skew_s_.load());
}

HttpResponse S3Backend::send(Call& call) {
  const std::atomic<bool>* cancel = call.ignore_cancel ? nullptr : options_.cancel;
  Verdict last;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    throw_if_cancelled(cancel);
    if (call.before_attempt) call.before_attempt();
    HttpRequest req = signed_request(call);
    HttpResponse resp = http_.perform(req);
    log::debug("{} {} -> {}{}", call.method, redact_url(req.url), resp.status,
               resp.curl_code != 0 ? " (" + resp.error + ")" : std::string());
    throw_if_cancelled(cancel);
    if (resp.write_errno != 0) throw_errno(ErrorKind::kIo, "write download of", call.what, resp.write_errno);

    std::string problem;
    if (resp.ok() && call.check) problem = call.check(resp);
    last = classify(resp, CallContext{call.what, host_, call.allow_404, problem});
    if (last.action == Verdict::Action::kAccept) return resp;
    if (last.refresh_credentials) credentials_.invalidate();
    if (last.clock_skewed) learn_clock_skew(resp);
    if (last.action != Verdict::Action::kRetry || attempt + 1 >= options_.max_attempts) break;
    double delay = (last.throttled ? kThrottleBackoff : kRetryBackoff).delay_s(attempt);
    log::debug("retrying {} in {:.2f} s: {}", call.what, delay, last.message);
    if (!sleep_unless(delay, [cancel] { return cancel != nullptr && cancel->load(); })) throw Cancelled();
  }
  if (last.action == Verdict::Action::kRetry && options_.max_attempts > 1)
    last.message += " (after " + std::to_string(options_.max_attempts) + " attempts)";
  throw Error(last.kind, last.message);
}

std::vector<ObjectInfo> S3Backend::list_pages(const std::string& prefix, bool delimited,
                                              std::vector<std::string>* prefixes) {
  std::vector<ObjectInfo> out;
  std::string token;
  std::size_t strip = root_.prefix.empty() ? 0 : root_.prefix.size() + 1;
  while (true) {
    Call c;
    c.query = {{"list-type", "2"}, {"encoding-type", "url"}};
    if (!prefix.empty()) c.query.emplace_back("prefix", prefix);
    if (delimited) c.query.emplace_back("delimiter", "/");
    if (!token.empty()) c.query.emplace_back("continuation-token", token);
    c.what = "list s3://" + root_.bucket + "/" + prefix;
    HttpResponse r = send(c);
    // Keys come URL-encoded (encoding-type=url) so control characters survive the XML.
    bool url_encoded = xml::text(r.body, "EncodingType") == "url";
    auto decode = [&](std::string_view raw) {
      std::string s = xml::unescape(raw);
      return url_encoded ? url_decode(s) : s;
    };
    for (std::string_view item : xml::elements(r.body, "Contents")) {
      ObjectInfo o;
      std::string key = decode(xml::elements(item, "Key").empty() ? "" : xml::elements(item, "Key").front());
      if (key.size() < strip || key.compare(0, strip, prefix.substr(0, strip)) != 0) continue;
      o.key = key.substr(strip);
      std::string size = xml::text(item, "Size");
      o.size = size.empty() ? 0 : parse_count(size, c.what, "Size");
      o.etag = strip_quotes(xml::text(item, "ETag"));
      o.last_modified = xml::text(item, "LastModified");
      out.push_back(std::move(o));
    }
    if (prefixes != nullptr) {
      for (std::string_view cp : xml::elements(r.body, "CommonPrefixes")) {
        auto p = xml::elements(cp, "Prefix");
        if (p.empty()) continue;
        std::string full = decode(p.front());
        if (full.size() >= strip) prefixes->push_back(full.substr(strip));
      }
    }
    if (xml::text(r.body, "IsTruncated") != "true") break;
    std::string next = xml::text(r.body, "NextContinuationToken");
    if (next.empty() || next == token)
      throw Error(ErrorKind::kDataErr, c.what + ": truncated listing without a new continuation token");
    token = next;
  }
  std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

std::vector<ObjectInfo> S3Backend::list(std::string_view sub) {
  std::string prefix = root_.prefix.empty() ? std::string(sub) : root_.prefix + "/" + std::string(sub);
  return list_pages(prefix, false, nullptr);
}

DirListing S3Backend::list_dir(std::string_view sub) {
  std::string prefix = root_.prefix.empty() ? std::string(sub) : root_.prefix + "/" + std::string(sub);
  DirListing out;
  out.objects = list_pages(prefix, true, &out.prefixes);
  return out;
}

ObjectInfo S3Backend::info_from_headers(const std::string& key, const HttpResponse& resp) const {
  ObjectInfo o;
  o.key = key;
  std::string len = resp.header("content-length");
  o.size = len.empty() ? 0 : parse_count(len, "HEAD " + describe(root_.key_for(key)), "Content-Length");
  o.etag = strip_quotes(resp.header("etag"));
  o.last_modified = resp.header("last-modified");
  o.sha256 = resp.header("x-amz-meta-sha256");
  return o;
}

std::optional<ObjectInfo> S3Backend::head(std::string_view key) {
  Call c;
  c.method = "HEAD";
  c.key = root_.key_for(key);
  c.allow_404 = true;
  c.what = "HEAD " + describe(c.key);
  HttpResponse r = send(c);
  if (r.status == 404) return std::nullopt;
  return info_from_headers(std::string(key), r);
}

ObjectInfo S3Backend::put_bytes(std::string_view data, std::string_view key) {
  std::string sha = sha256_hex(data);
  Call c;
  c.method = "PUT";
  c.key = root_.key_for(key);
  c.body = data;
  c.payload_sha256 = sha;
  c.headers = {{"x-amz-meta-sha256", sha}};
  if (options_.checksum == ChecksumAlgorithm::kSha256) {
    c.headers.emplace_back("x-amz-sdk-checksum-algorithm", "SHA256");
    c.headers.emplace_back("x-amz-checksum-sha256", base64_encode(from_hex(sha)));
  } else {
    c.headers.emplace_back("Content-MD5", base64_encode(md5_raw(data)));
  }
  c.what = "PUT " + describe(c.key);
  HttpResponse r = send(c);
  ObjectInfo o;
  o.key = std::string(key);
  o.size = data.size();
  o.etag = strip_quotes(r.header("etag"));
  o.sha256 = sha;
  return o;
}

ObjectInfo S3Backend::put_single(int fd, std::uint64_t size, const std::string& key, const std::string& sha256) {
  bool md5 = options_.checksum == ChecksumAlgorithm::kMd5;
  std::string sha = sha256;
  std::string md5_digest;
  if (sha.empty() || md5) {
    RangeHashes h = hash_fd_range(fd, 0, size, md5, options_.cancel);
    sha = h.sha256_hex;
    md5_digest = h.md5_raw;
  }
  Call c;
  c.method = "PUT";
  c.key = key;
  c.body_fd = fd;
  c.body_size = size;
  c.payload_sha256 = sha;
  c.headers = {{"x-amz-meta-sha256", sha}};
  if (md5) {
    c.headers.emplace_back("Content-MD5", base64_encode(md5_digest));
  } else {
    c.headers.emplace_back("x-amz-sdk-checksum-algorithm", "SHA256");
    c.headers.emplace_back("x-amz-checksum-sha256", base64_encode(from_hex(sha)));
  }
  c.what = "PUT " + describe(key);
  HttpResponse r = send(c);
  ObjectInfo o;
  o.size = size;
  o.etag = strip_quotes(r.header("etag"));
  o.sha256 = sha;
  return o;
}

void S3Backend::abort_multipart(const std::string& key, const std::string& upload_id) {
  // Runs even after a cancel: an abandoned upload keeps costing storage.
  Call c;
  c.method = "DELETE";
  c.key = key;
  c.query = {{"uploadId", upload_id}};
  c.allow_404 = true;
  c.ignore_cancel = true;
  c.what = "abort multipart upload " + describe(key);
  try {
    send(c);
  } catch (const Error& e) {
    log::warn("could not abort multipart upload of {} (upload id {}): {}", describe(key), upload_id, e.what());
  }
}

ObjectInfo S3Backend::put_multipart(int fd, std::uint64_t size, const std::string& key, const std::string& sha256,
                                    const std::function<void()>& before_complete) {
  std::uint64_t part = std::max({options_.part_size, kMinPartSize, (size + kMaxParts - 1) / kMaxParts});
  std::size_t nparts = static_cast<std::size_t>((size + part - 1) / part);
  bool md5 = options_.checksum == ChecksumAlgorithm::kMd5;

  Call init;
  init.method = "POST";
  init.key = key;
  init.query = {{"uploads", ""}};
  init.headers = {{"x-amz-meta-sha256", sha256}};
  if (!md5) init.headers.emplace_back("x-amz-checksum-algorithm", "SHA256");
  init.what = "start multipart upload " + describe(key);
  init.check = [](const HttpResponse& r) { return xml::text(r.body, "UploadId").empty() ? "no UploadId in answer" : ""; };
  std::string upload_id = xml::text(send(init).body, "UploadId");

  struct PartResult {
    std::string etag, checksum;
  };
  std::vector<PartResult> parts(nparts);
  try {
    // The pool stops handing out parts after the first failure and rethrows it here.
    ThreadPool pool(std::min<int>(options_.jobs, static_cast<int>(nparts)));
    pool.parallel_for(nparts, 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        std::uint64_t off = i * part;
        std::uint64_t len = std::min(part, size - off);
        RangeHashes h = hash_fd_range(fd, off, len, md5, options_.cancel);
        Call c;
        c.method = "PUT";
        c.key = key;
        c.query = {{"partNumber", std::to_string(i + 1)}, {"uploadId", upload_id}};
        c.body_fd = fd;
        c.body_offset = off;
        c.body_size = len;
        c.payload_sha256 = h.sha256_hex;
        std::string checksum = base64_encode(from_hex(h.sha256_hex));
        if (md5) {
          c.headers = {{"Content-MD5", base64_encode(h.md5_raw)}};
        } else {
          c.headers = {{"x-amz-sdk-checksum-algorithm", "SHA256"}, {"x-amz-checksum-sha256", checksum}};
        }
        c.what = "PUT part " + std::to_string(i + 1) + "/" + std::to_string(nparts) + " of " + describe(key);
        c.check = [](const HttpResponse& r) { return r.header("etag").empty() ? "no ETag in answer" : ""; };
        HttpResponse r = send(c);
        parts[i] = {r.header("etag"), md5 ? std::string() : checksum};
      }
    });

    std::string body = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    for (std::size_t i = 0; i < nparts; ++i) {
      body += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + xml::escape(parts[i].etag) + "</ETag>";
      if (!parts[i].checksum.empty()) body += "<ChecksumSHA256>" + parts[i].checksum + "</ChecksumSHA256>";
      body += "</Part>";
    }
    body += "</CompleteMultipartUpload>";
    before_complete();
    Call done;
    done.method = "POST";
    done.key = key;
    done.query = {{"uploadId", upload_id}};
    done.headers = {{"Content-Type", "application/xml"}};
    done.body = body;
    done.payload_sha256 = sha256_hex(body);
    done.what = "complete multipart upload " + describe(key);
    // S3 may answer 200 and still fail: the error is then in the body.
    done.check = [](const HttpResponse& r) {
      if (xml::has(r.body, "Error")) return "error in 200 answer: " + xml::text(r.body, "Code") + " " + xml::text(r.body, "Message");
      return std::string();
    };
    ObjectInfo o;
    o.size = size;
    o.sha256 = sha256;
    try {
      o.etag = strip_quotes(xml::text(send(done).body, "ETag"));
    } catch (const Error& e) {
      // A retried Complete whose first try succeeded answers NoSuchUpload: the object is there.
      std::optional<ObjectInfo> there = e.kind() == ErrorKind::kNoInput ? head(key_relative(key)) : std::nullopt;
      if (!there || there->sha256 != sha256 || there->size != size) throw;
      o.etag = there->etag;
    }
    return o;
  } catch (...) {
    abort_multipart(key, upload_id);
    throw;
  }
}

ObjectInfo S3Backend::put_file(const std::string& local_path, std::string_view key, const std::string& sha256) {
  UniqueFd file = open_read(local_path);
  int fd = file.get();
  struct stat before{};
  if (::fstat(fd, &before) != 0) throw_errno(ErrorKind::kIo, "stat", local_path, errno);
  std::uint64_t size = static_cast<std::uint64_t>(before.st_size);
  // A file written to while it is sent would make the object disagree with its recorded sha256.
  auto check_unchanged = [&] {
    struct stat now{};
    if (::fstat(fd, &now) != 0 || now.st_size != before.st_size || now.st_mtim.tv_sec != before.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != before.st_mtim.tv_nsec)
      throw Error(ErrorKind::kTempFail, local_path + ": file changed while it was uploaded");
  };
  std::string full_key = root_.key_for(key);
  ObjectInfo o;
  if (size < options_.multipart_threshold) {
    // A single PUT carries the content's checksum: the store itself refuses changed bytes.
    o = put_single(fd, size, full_key, sha256);
  } else {
    std::string sha = sha256.empty() ? hash_fd_range(fd, 0, size, false, options_.cancel).sha256_hex : sha256;
    // Checked before Complete, so a changed file aborts the upload and no object appears.
    o = put_multipart(fd, size, full_key, sha, check_unchanged);
  }
  check_unchanged();
  o.key = std::string(key);
  return o;
}

std::uint64_t S3Backend::multipart_part_size(const std::string& key) {
  Call c;
  c.method = "HEAD";
  c.key = key;
  c.query = {{"partNumber", "1"}};
  // Not pinned with If-Match: some stores compare it with the part's ETag. The ranged GETs are
  // pinned, and a wrong part size fails the MD5-of-parts check anyway.
  c.what = "HEAD part 1 of " + describe(key);
  HttpResponse r = send(c);
  std::string len = r.header("content-length");
  return len.empty() ? 0 : parse_count(len, c.what, "Content-Length");
}

Fetched S3Backend::get_to_fd(const ObjectInfo& expected, int fd) {
  for (int attempt = 1;; ++attempt) {
    try {
      return get_once(expected, fd);
    } catch (const IntegrityError& e) {
      if (attempt >= kVerifyAttempts) throw;
      log::warn("{}; downloading again", e.what());
      if (::ftruncate(fd, 0) != 0) throw_errno(ErrorKind::kIo, "truncate", describe(root_.key_for(expected.key)), errno);
    }
  }
}

namespace {

// A multipart ETag "-N" with a part size P describes `size` bytes only when (N-1)*P < size <= N*P.
bool parts_fit(std::uint64_t parts, std::uint64_t part_size, std::uint64_t size) {
  return parts > 0 && part_size > 0 && (parts - 1) * part_size < size && size <= parts * part_size;
}

}  // namespace

// The strongest check the store's records allow (see Verified), one place for both download paths.
Fetched S3Backend::verify(const std::string& what, const Recorded& rec, const Computed& got) {
  Fetched out;
  out.sha256 = got.sha256_hex;
  if (!rec.sha256.empty()) {
    if (rec.sha256 != got.sha256_hex)
      throw IntegrityError(what + ": SHA-256 mismatch (content " + got.sha256_hex + ", recorded " + rec.sha256 + ")");
    out.verified = Verified::kSha256;
  } else if (!got.part_md5.empty()) {
    std::string cat;
    for (const auto& m : got.part_md5) cat += m;
    std::string want = to_hex(md5_raw(cat)) + "-" + std::to_string(rec.parts);
    if (want != rec.etag)
      throw IntegrityError(what + ": multipart MD5 mismatch (content " + want + ", ETag " + rec.etag + ")");
    out.verified = Verified::kMultipartMd5;
  } else if (!got.md5_raw.empty() && rec.md5_etag()) {
    std::string want = to_hex(got.md5_raw);
    if (want != rec.etag) throw IntegrityError(what + ": MD5 mismatch (content " + want + ", ETag " + rec.etag + ")");
    out.verified = Verified::kMd5;
  } else {
    out.verified = Verified::kSizeOnly;
  }
  return out;
}

bool S3Backend::Recorded::md5_etag() const { return !hidden_md5 && is_md5_etag(etag); }

Fetched S3Backend::get_once(const ObjectInfo& expected, int fd) {
  std::string key = root_.key_for(expected.key);
  Recorded rec;
  rec.etag = expected.etag;
  rec.parts = multipart_etag_parts(rec.etag);
  if (expected.size < options_.multipart_threshold) return get_single(key, expected.size, rec, fd);
  return get_ranged(key, expected.size, rec, fd);
}

// One GET, hashed as it streams in; a multipart object's part MD5s are read back from the file.
Fetched S3Backend::get_single(const std::string& key, std::uint64_t size, Recorded rec, int fd) {
  std::string what = "GET " + describe(key);
  std::unique_ptr<Sha256> sha;
  std::unique_ptr<Md5> md5;
  bool want_md5 = is_md5_etag(rec.etag);
  Call c;
  c.key = key;
  if (!rec.etag.empty()) c.headers = {{"If-Match", "\"" + rec.etag + "\""}};
  c.out_fd = fd;
  c.out_limit = size;
  c.what = what;
  c.before_attempt = [&] {
    if (::ftruncate(fd, 0) != 0) throw_errno(ErrorKind::kIo, "truncate", what, errno);
    sha = std::make_unique<Sha256>();
    md5 = want_md5 ? std::make_unique<Md5>() : nullptr;
  };
  c.on_body = [&](const char* d, std::size_t n) {
    sha->update(d, n);
    if (md5) md5->update(d, n);
  };
  c.check = [&](const HttpResponse& r) -> std::string {
    if (r.body_bytes != size) return "got " + std::to_string(r.body_bytes) + " of " + std::to_string(size) + " bytes";
    return "";
  };
  HttpResponse r = send(c);
  rec.sha256 = r.header("x-amz-meta-sha256");
  rec.hidden_md5 = sse_hides_md5(r);
  Computed got;
  got.sha256_hex = sha->hex_digest();
  if (md5) got.md5_raw = md5->raw_digest();
  if (rec.sha256.empty() && !rec.hidden_md5 && rec.parts > 0) {
    std::uint64_t part = multipart_part_size(key);
    if (parts_fit(rec.parts, part, size))
      for (std::uint64_t off = 0; off < size; off += part)
        got.part_md5.push_back(hash_fd_range(fd, off, std::min(part, size - off), true, options_.cancel).md5_raw);
  }
  return verify(what, rec, got);
}

// HEAD (what can be verified), then parallel ranged GETs pinned to the ETag. Ranges follow the
// upload's parts when only the multipart ETag can verify them, so each range's MD5 is a part MD5.
Fetched S3Backend::get_ranged(const std::string& key, std::uint64_t size, Recorded rec, int fd) {
  std::string what = "GET " + describe(key);
  Call h;
  h.method = "HEAD";
  h.key = key;
  if (!rec.etag.empty()) h.headers = {{"If-Match", "\"" + rec.etag + "\""}};
  h.what = "HEAD " + describe(key);
  HttpResponse hr = send(h);
  rec.sha256 = hr.header("x-amz-meta-sha256");
  rec.hidden_md5 = sse_hides_md5(hr);
  if (rec.etag.empty()) {
    rec.etag = strip_quotes(hr.header("etag"));
    rec.parts = multipart_etag_parts(rec.etag);
  }
  sigv4::Pairs pin;
  if (!rec.etag.empty()) pin = {{"If-Match", "\"" + rec.etag + "\""}};
  // As many ranges as workers (fewest requests at full parallelism), each between the part size
  // and kMaxRange so a retried range stays cheap.
  std::uint64_t jobs = static_cast<std::uint64_t>(std::max(1, options_.jobs));
  std::uint64_t range = std::clamp<std::uint64_t>((size + jobs - 1) / jobs, std::max<std::uint64_t>(options_.part_size, 1 << 20),
                                                  std::max<std::uint64_t>(options_.part_size, kMaxRange));
  bool per_part_md5 = false;
  if (rec.sha256.empty() && !rec.hidden_md5 && rec.parts > 0) {
    std::uint64_t part = multipart_part_size(key);
    if (parts_fit(rec.parts, part, size)) {
      range = part;
      per_part_md5 = true;
    }
  }
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw_errno(ErrorKind::kIo, "allocate", what, errno);
  std::size_t nranges = static_cast<std::size_t>((size + range - 1) / range);
  Computed got;
  if (per_part_md5) got.part_md5.resize(nranges);
  ThreadPool pool(std::min<int>(options_.jobs, static_cast<int>(nranges)));
  pool.parallel_for(nranges, 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      std::uint64_t off = i * range;
      std::uint64_t len = std::min(range, size - off);
      std::unique_ptr<Md5> md5;
      Call c;
      c.key = key;
      c.headers = pin;
      c.headers.emplace_back("Range", "bytes=" + std::to_string(off) + "-" + std::to_string(off + len - 1));
      c.out_fd = fd;
      c.out_offset = off;
      c.out_limit = len;
      c.what = what + " bytes " + std::to_string(off) + "-" + std::to_string(off + len - 1);
      c.before_attempt = [&] { md5 = per_part_md5 ? std::make_unique<Md5>() : nullptr; };
      c.on_body = [&](const char* d, std::size_t n) {
        if (md5) md5->update(d, n);
      };
      c.check = [&](const HttpResponse& r) -> std::string {
        if (r.status != 206 && !(r.status == 200 && off == 0 && len == size)) return "server ignored the Range header";
        if (r.body_bytes != len) return "got " + std::to_string(r.body_bytes) + " of " + std::to_string(len) + " bytes";
        return "";
      };
      send(c);
      if (md5) got.part_md5[i] = md5->raw_digest();
    }
  });
  RangeHashes all = hash_fd_range(fd, 0, size, rec.sha256.empty() && rec.md5_etag(), options_.cancel);
  got.sha256_hex = all.sha256_hex;
  got.md5_raw = all.md5_raw;
  return verify(what, rec, got);
}

std::string S3Backend::get_bytes(std::string_view key) {
  Call c;
  c.key = root_.key_for(key);
  c.what = "GET " + describe(c.key);
  return send(c).body;
}

void S3Backend::remove(const std::vector<std::string>& keys) {
  for (std::size_t start = 0; start < keys.size(); start += kDeleteBatch) {
    std::size_t end = std::min(keys.size(), start + kDeleteBatch);
    std::string body = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>";
    for (std::size_t i = start; i < end; ++i)
      body += "<Object><Key>" + xml::escape(root_.key_for(keys[i])) + "</Key></Object>";
    body += "</Delete>";
    Call c;
    c.method = "POST";
    c.query = {{"delete", ""}};
    c.body = body;
    c.payload_sha256 = sha256_hex(body);
    // DeleteObjects requires an integrity header; Content-MD5 is the one every store knows.
    c.headers = {{"Content-MD5", base64_encode(md5_raw(body))}, {"Content-Type", "application/xml"}};
    c.what = "delete " + std::to_string(end - start) + " objects in s3://" + root_.bucket;
    HttpResponse r = send(c);
    auto errors = xml::elements(r.body, "Error");
    if (!errors.empty()) {
      std::string code = xml::text(errors.front(), "Code");
      throw Error(code == "AccessDenied" ? ErrorKind::kNoPerm : ErrorKind::kTempFail,
                  c.what + ": " + std::to_string(errors.size()) + " failed, first " +
                      xml::text(errors.front(), "Key") + ": " + code + " " + xml::text(errors.front(), "Message"));
    }
  }
}

std::string S3Backend::presign(std::string_view key, std::chrono::seconds expires, std::string_view method) {
  if (expires.count() < 1 || expires.count() > 7 * 24 * 3600)
    throw Error(ErrorKind::kUsage, "presign expiry must be between 1 second and 7 days");
  std::string full = root_.key_for(key);
  std::string host, path;
  build_url(full, {}, &host, &path);
  sigv4::Request r{std::string(method), host, path, {}, {}};
  std::string q = sigv4::presign_query(r, credentials_.get(), region_, "s3",
                                       sigv4::amz_date(std::chrono::system_clock::now()), static_cast<long>(expires.count()));
  return scheme_ + "://" + host + sigv4::uri_encode(path, true) + "?" + q;
}

std::unique_ptr<Backend> open_backend(const Url& url, const Options& options) {
  if (url.scheme == Scheme::kS3) return std::make_unique<S3Backend>(url, options);
  return std::make_unique<LocalBackend>(url, options);
}

std::string_view verified_name(Verified v) {
  switch (v) {
    case Verified::kSha256: return "sha256";
    case Verified::kMd5: return "md5";
    case Verified::kMultipartMd5: return "multipart-md5";
    case Verified::kSizeOnly: return "size";
  }
  return "size";
}

}  // namespace hf::storage
