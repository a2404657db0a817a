// hf-predict --serve on cpp-httplib: a bounded pool of HTTP threads (one per connection, read and
// write timeouts so a slow client holds only its own thread) hands inference requests to the
// Batcher; the main thread loads the model, then waits for SIGTERM/SIGINT and drains.
#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/signals.h"
#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/page.h"
#include "serve/serve.h"

namespace hf::serve {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr int kDefaultPort = 8080;
constexpr int kRetryAfterSeconds = 1;       // 429's hint: a batch takes well under a second
constexpr int kStopPollMs = 50;             // how often the main thread looks for a stop signal
// Idle keep-alive connections end after this; it bounds how long a drain waits for them.
constexpr time_t kKeepAliveTimeoutS = 2;
constexpr std::size_t kKeepAliveMaxRequests = 10000;

enum class State { kLoading, kReady, kDraining };

const char* const kRoutes[] = {"/", "/ping", "/health", "/metrics", "/info", "/invocations", "/predict"};

// The metrics label of a path: one of ours, or "other" (unknown paths must not grow the set).
std::string_view route_of(const std::string& path) {
  for (const char* r : kRoutes)
    if (path == r) return r;
  return "other";
}

int resolve_port(int port) {
  if (port >= 0) {
    if (port > 65535) throw Error(ErrorKind::kUsage, fmt::format("--port {}: expected 0..65535", port));
    return port;
  }
  const char* env = std::getenv("SAGEMAKER_BIND_TO_PORT");
  if (env == nullptr || *env == '\0') return kDefaultPort;
  int v = -1;
  std::string_view s(env);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 1 || v > 65535)
    throw Error(ErrorKind::kUsage, fmt::format("SAGEMAKER_BIND_TO_PORT '{}': expected a port 1..65535", s));
  return v;
}

std::string sha256_raw(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr) != 1)
    throw Error(ErrorKind::kInternal, "SHA-256 failed");
  return {reinterpret_cast<const char*>(md), n};
}

// The key's digest ("" = no key). The key itself is never kept, logged or echoed.
std::string api_key_digest(const std::string& file) {
  std::string key;
  if (!file.empty()) {
    key = read_file(file);
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
    if (key.empty()) throw Error(ErrorKind::kConfig, fmt::format("--api-key-file '{}': empty", file));
  } else if (const char* env = std::getenv("HFKIT_API_KEY"); env != nullptr && *env != '\0') {
    key = env;
  }
  return key.empty() ? std::string() : sha256_raw(key);
}

// Digests of equal length compared in constant time: neither the key's bytes nor its length leak
// through timing.
bool authorized(const std::string& key_digest, const httplib::Request& req) {
  if (key_digest.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0) return false;
  const std::string got = sha256_raw(std::string_view(header).substr(kBearer.size()));
  return CRYPTO_memcmp(got.data(), key_digest.data(), key_digest.size()) == 0;
}

void json_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(Json{{"error", message}}.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

bool is_jsonlines(const httplib::Request& req) {
  const std::string ct = req.get_header_value("Content-Type");
  return ct.rfind("application/jsonlines", 0) == 0 || ct.rfind("application/x-jsonlines", 0) == 0 ||
         ct.rfind("application/jsonl", 0) == 0;
}

// A value for the access log: JSON-quoted when it could break the key=value layout.
std::string quoted(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \"=\\") == std::string::npos) {
    bool plain = true;
    for (unsigned char c : s) plain = plain && c > 0x20 && c < 0x7f;
    if (plain) return s;
  }
  return Json(s).dump(-1, ' ', true, Json::error_handler_t::replace);
}

// When the current request started (set when routing begins, on the thread that answers it).
thread_local Clock::time_point t_request_start;

struct Service {
  Service(const ServeOptions& o, std::string digest) : options(o), model_label(o.batch.model), key_digest(std::move(digest)) {}

  const ServeOptions& options;
  std::string model_label;  // as given (directory or registry reference)
  std::string key_digest;
  Metrics metrics;
  std::atomic<State> state{State::kLoading};
  std::unique_ptr<predict::Predictor> predictor;
  std::unique_ptr<Batcher> batcher;

  void info(httplib::Response& res) const {
    const auto& p = *predictor;
    const char* task = p.task() == predict::Task::kSingleLabel  ? "single_label_classification"
                       : p.task() == predict::Task::kMultiLabel ? "multi_label_classification"
                                                                : "regression";
    Json j = {{"model", model_label},       {"labels", p.labels()},
              {"task", task},               {"max_length", p.max_length()},
              {"hfkit_version", options.version}, {"device", p.device()},
              {"dtype", p.device() == "cpu" ? "float32" : "float32 (bf16 autocast where supported)"},
              {"max_batch_size", options.max_batch_size}, {"max_batch_tokens", options.max_batch_tokens},
              {"max_wait_ms", options.max_wait_ms}};
    res.set_content(j.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
  }

  void predict(const httplib::Request& req, httplib::Response& res) {
    if (state.load() == State::kLoading) return json_error(res, 503, "the model is loading");
    const bool jsonl = is_jsonlines(req);
    InferenceRequest r;
    try {
      r = jsonl ? parse_jsonl_request(req.body, options.batch.text_field, options.batch.text_pair_field)
                : parse_hf_request(req.body);
    } catch (const Error& e) {
      return json_error(res, 400, e.what());
    }
    if (r.texts.size() > options.max_queue)
      return json_error(res, 413, fmt::format("{} inputs: at most {} per request", r.texts.size(), options.max_queue));
    std::future<std::vector<predict::Prediction>> result;
    switch (batcher->submit(std::move(r.texts), std::move(r.pairs), result)) {
      case Batcher::Submitted::kQueued: break;
      case Batcher::Submitted::kFull:
        res.set_header("Retry-After", std::to_string(kRetryAfterSeconds));
        return json_error(res, 429, "queue full: retry later");
      case Batcher::Submitted::kStopped: return json_error(res, 503, "the server is shutting down");
    }
    std::vector<predict::Prediction> preds;
    try {
      preds = result.get();
    } catch (const std::exception& e) {
      log::error("inference failed: {}", e.what());
      return json_error(res, 500, "inference failed");
    }
    for (std::size_t i = 0; i < preds.size(); ++i)
      if (!preds[i].error.empty())
        return json_error(res, 400, fmt::format("{} {}: {}", jsonl ? "record" : "input", i, preds[i].error));
    const auto& labels = predictor->labels();
    if (jsonl) {
      res.set_content(jsonl_response(r, preds, options.batch, labels, predictor->task()), "application/jsonlines");
    } else {
      res.set_content(hf_response(r, preds, labels, predictor->task()).dump(-1, ' ', false, Json::error_handler_t::replace),
                      "application/json");
    }
  }

  void routes(httplib::Server& svr) {
    auto method_not_allowed = [](const char* allow) {
      return [allow](const httplib::Request& req, httplib::Response& res) {
        res.set_header("Allow", allow);
        json_error(res, 405, fmt::format("{} {}: method not allowed (allowed: {})", req.method, req.path, allow));
      };
    };
    auto health = [this](const httplib::Request&, httplib::Response& res) {
      const State s = state.load();
      if (s == State::kReady) {
        res.set_content("{\"status\":\"ok\"}", "application/json");
      } else {
        json_error(res, 503, s == State::kLoading ? "loading" : "draining");
      }
    };
    svr.Get("/ping", health);
    svr.Get("/health", health);
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(index_page()), "text/html; charset=utf-8");
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      // The batcher exists once the state left kLoading (set before the state, read after it).
      res.set_content(metrics.render(state.load() == State::kLoading ? 0 : batcher->depth()), "text/plain; version=0.0.4");
    });
    svr.Get("/info", [this](const httplib::Request&, httplib::Response& res) {
      if (state.load() == State::kLoading) return json_error(res, 503, "the model is loading");
      info(res);
    });
    auto infer = [this](const httplib::Request& req, httplib::Response& res) { predict(req, res); };
    svr.Post("/invocations", infer);
    svr.Post("/predict", infer);
    const std::string get_routes = "/|/ping|/health|/metrics|/info";
    const std::string post_routes = "/invocations|/predict";
    svr.Get(post_routes, method_not_allowed("POST"));
    svr.Post(get_routes, method_not_allowed("GET, HEAD"));
    for (const std::string& pattern : {get_routes, post_routes}) {
      const char* allow = pattern == get_routes ? "GET, HEAD" : "POST";
      svr.Put(pattern, method_not_allowed(allow));
      svr.Patch(pattern, method_not_allowed(allow));
      svr.Delete(pattern, method_not_allowed(allow));
      svr.Options(pattern, method_not_allowed(allow));
    }
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request_start = Clock::now();
      // Health checks (load balancers, SageMaker) and the page itself need no key; the page's
      // own requests send it.
      if (req.path == "/ping" || req.path == "/health" || req.path == "/") return httplib::Server::HandlerResponse::Unhandled;
      if (authorized(key_digest, req)) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      json_error(res, 401, "missing or wrong API key (Authorization: Bearer <key>)");
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404) return json_error(res, 404, fmt::format("{}: not found", req.path));
      if (res.status == 413) return json_error(res, 413, "request body too large");
      json_error(res, res.status, fmt::format("HTTP {}", res.status));
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        log::error("internal error: {}", e.what());
      } catch (...) {
        log::error("internal error");
      }
      json_error(res, 500, "internal error");
    });
    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const Clock::time_point start = t_request_start;
      t_request_start = {};
      const double seconds =
          start == Clock::time_point{} ? 0.0 : std::chrono::duration<double>(Clock::now() - start).count();
      const std::string_view route = route_of(req.path);
      metrics.request(route, res.status, seconds);
      log::info("access method={} path={} status={} bytes_in={} bytes_out={} ms={:.3f} remote={}:{}",
                quoted(req.method), quoted(req.path), res.status, req.body.size(), res.body.size(), seconds * 1000,
                req.remote_addr, req.remote_port);
    });
  }
};

}  // namespace

Outcome run_server(const ServeOptions& o) {
  if (o.batch.model.empty()) throw Error(ErrorKind::kUsage, "--model is required");
  if (o.max_batch_size == 0) throw Error(ErrorKind::kUsage, "--max-batch-size must be at least 1");
  if (o.max_queue == 0) throw Error(ErrorKind::kUsage, "--max-queue must be at least 1");
  if (o.http_threads < 1) throw Error(ErrorKind::kUsage, "--http-threads must be at least 1");
  if (o.max_wait_ms < 0) throw Error(ErrorKind::kUsage, "--max-wait-ms must be 0 or more");
  const int port = resolve_port(o.port);
  Service service(o, api_key_digest(o.api_key_file));

  httplib::Server svr;
  const std::size_t threads = static_cast<std::size_t>(o.http_threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(o.max_body_bytes);
  svr.set_read_timeout(std::chrono::duration<double>(o.read_timeout_s));
  svr.set_write_timeout(std::chrono::duration<double>(o.write_timeout_s));
  svr.set_keep_alive_timeout(kKeepAliveTimeoutS);
  svr.set_keep_alive_max_count(kKeepAliveMaxRequests);
  service.routes(svr);
  const int bound = port == 0 ? svr.bind_to_any_port(o.host) : (svr.bind_to_port(o.host, port) ? port : -1);
  if (bound < 0)
    throw Error(ErrorKind::kUnavailable, fmt::format("cannot listen on {}:{} (in use, or not an address of this host)",
                                                     o.host, port));
  // Serving starts before the model loads, so health checks see 503 "loading" instead of no answer.
  std::thread http([&svr] { svr.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs: wait for it, so a failed load can stop it.
  while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  log::info("listening on http://{}:{}", o.host, bound);
  auto stop_http = [&] {
    svr.stop();
    if (http.joinable()) http.join();
  };
  try {
    const auto start = Clock::now();
    const std::string dir = resolve_model(o.batch.model, o.cache_dir, o.storage);
    predict::PredictorOptions po = o.batch.predictor;
    po.batch_size = o.max_batch_size;
    po.stop_on_signal = false;  // SIGTERM drains: accepted requests are answered
    service.predictor = std::make_unique<predict::Predictor>(dir, po);
    const double load = std::chrono::duration<double>(Clock::now() - start).count();
    service.metrics.model_loaded(load);
    BatcherOptions bo{o.max_batch_size, o.max_batch_tokens, std::chrono::milliseconds(o.max_wait_ms), o.max_queue,
                      service.predictor->max_length()};
    service.batcher = std::make_unique<Batcher>(*service.predictor, bo, service.metrics);
    log::info("model {} loaded in {:.2f} s: {} labels, max_length {}, device {}", o.batch.model, load,
              service.predictor->labels().size(), service.predictor->max_length(), service.predictor->device());
  } catch (...) {
    stop_http();
    throw;
  }
  service.state = State::kReady;
  log::info("ready");
  while (!stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(kStopPollMs));
  // Drain: health turns 503, the listening socket closes (no new connections), requests already
  // being read or waiting in the batcher are answered, then the inference thread ends.
  service.state = State::kDraining;
  log::info("signal {}: draining ({} texts queued)", stop_signal(), service.batcher->depth());
  stop_http();
  service.batcher->stop();
  log::info("stopped");
  return Outcome::kOk;
}

}  // namespace hf::serve
