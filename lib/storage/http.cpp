// libcurl-backed HTTP client (see http.h).
#include "storage/http.h"

#include <curl/curl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

#include "core/error.h"

namespace hf::storage {
namespace {

// Curl's download/upload buffers: larger ones cut syscalls and callback overhead on fast links.
constexpr long kDownloadBuffer = 512 * 1024;
constexpr long kUploadBuffer = 1024 * 1024;
// Error bodies are small XML documents; anything longer is cut (never needed in full).
constexpr std::size_t kMaxErrorBody = 64 * 1024;

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  CURL* curl;
  const std::atomic<bool>* cancel;
  std::uint64_t sent = 0;
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new status line (100 Continue, redirects): start over
    t->response->headers.clear();
    return size * n;
  }
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  t->response->headers.emplace_back(std::move(name), std::string(value));
  return size * n;
}

std::size_t on_write(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  const HttpRequest& req = *t->request;
  HttpResponse& resp = *t->response;
  if (req.progress != nullptr) req.progress->fetch_add(len, std::memory_order_relaxed);
  if (req.out_fd >= 0 && status >= 200 && status < 300) {
    if (req.out_limit > 0 && resp.body_bytes + len > req.out_limit) {
      resp.overflow = true;
      return 0;
    }
    std::size_t done = 0;
    while (done < len) {
      ssize_t w = ::pwrite(req.out_fd, data + done, len - done,
                           static_cast<off_t>(req.out_offset + resp.body_bytes + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        resp.write_errno = errno;
        return 0;
      }
      done += static_cast<std::size_t>(w);
    }
    if (req.on_body) req.on_body(data, len);
    resp.body_bytes += len;
    return len;
  }
  if (status >= 200 && status < 300) {
    resp.body.append(data, len);
  } else if (resp.body.size() < kMaxErrorBody) {
    resp.body.append(data, std::min(len, kMaxErrorBody - resp.body.size()));
  }
  return len;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequest& req = *t->request;
  std::size_t want = size * n;
  std::uint64_t total = req.body_fd >= 0 ? req.body_size : req.body.size();
  if (t->sent >= total) return 0;
  want = static_cast<std::size_t>(std::min<std::uint64_t>(want, total - t->sent));
  std::size_t got = 0;
  if (req.body_fd >= 0) {
    while (true) {
      ssize_t r = ::pread(req.body_fd, buffer, want, static_cast<off_t>(req.body_offset + t->sent));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return CURL_READFUNC_ABORT;  // the file shrank or failed: abort, caller sees it
      got = static_cast<std::size_t>(r);
      break;
    }
  } else {
    std::copy_n(req.body.data() + t->sent, want, buffer);
    got = want;
  }
  t->sent += got;
  if (req.progress != nullptr) req.progress->fetch_add(got, std::memory_order_relaxed);
  return got;
}

// Curl rewinds the body when a reused connection turned out dead after sending part of it.
int on_seek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  t->sent = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

void set_body_reader(CURL* curl, Transfer* t) {
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(curl, CURLOPT_READDATA, t);
  curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
  curl_easy_setopt(curl, CURLOPT_SEEKDATA, t);
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return (t->cancel != nullptr && t->cancel->load(std::memory_order_relaxed)) ? 1 : 0;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

bool is_connect_failure(int code) {
  return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
         code == CURLE_COULDNT_RESOLVE_PROXY;
}

bool is_timeout(int code) { return code == CURLE_OPERATION_TIMEDOUT; }

bool is_retryable_transport(int code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_SEND_FAIL_REWIND:
      return true;
    default:
      return false;
  }
}

HttpClient::HttpClient(HttpSettings settings) : settings_(settings) {
  static GlobalInit init;
}

HttpClient::~HttpClient() {
  for (void* h : free_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* HttpClient::acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      void* h = free_.back();
      free_.pop_back();
      return h;
    }
  }
  CURL* h = curl_easy_init();
  if (h == nullptr) throw Error(ErrorKind::kInternal, "curl_easy_init failed");
  return h;
}

void HttpClient::release(void* handle) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(handle);
}

HttpResponse HttpClient::perform(const HttpRequest& req) {
  HttpResponse resp;
  CURL* curl = static_cast<CURL*>(acquire());
  // Reset clears options but keeps the handle's connection cache: keep-alive reuse.
  curl_easy_reset(curl);
  Transfer t{&req, &resp, curl, req.ignore_cancel ? nullptr : settings_.cancel};

  curl_slist* headers = nullptr;
  bool has_content_type = false;
  for (const auto& [k, v] : req.headers) {
    std::string line = k + ": " + v;
    headers = curl_slist_append(headers, line.c_str());
    if (k.size() == 12 && strncasecmp(k.c_str(), "content-type", 12) == 0) has_content_type = true;
  }
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  headers = curl_slist_append(headers, "Accept:");
  if (!has_content_type) headers = curl_slist_append(headers, "Content-Type:");

  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);  // keys are paths verbatim: no dot-segment folding
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max(1.0, settings_.connect_timeout_s * 1000)));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(std::max(1.0, std::ceil(settings_.read_timeout_s))));
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, settings_.verify_ssl ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, settings_.verify_ssl ? 2L : 0L);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, kDownloadBuffer);
  curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBuffer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);

  std::uint64_t body_size = req.body_fd >= 0 ? req.body_size : req.body.size();
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
    set_body_reader(curl, &t);
  } else if (req.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_size));
    set_body_reader(curl, &t);
  } else if (req.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(curl);
  resp.curl_code = static_cast<int>(rc);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
  if (rc != CURLE_OK) {
    resp.error = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    if (rc == CURLE_WRITE_ERROR && resp.write_errno == 0 && !resp.overflow) resp.error = "write failed";
  }
  curl_slist_free_all(headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (rc == CURLE_OK || is_retryable_transport(rc) || rc == CURLE_ABORTED_BY_CALLBACK ||
      rc == CURLE_WRITE_ERROR || rc == CURLE_READ_ERROR) {
    release(curl);
  } else {
    curl_easy_cleanup(curl);  // unusual state: do not reuse the handle
  }
  return resp;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto hv = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      int hi = hv(s[i + 1]), lo = hv(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace hf::storage
