// hf-predict --serve on Boost.Beast: a few I/O threads run one io_context; each connection is a
// coroutine on its own strand with its own deadlines (idle, header, body, write), so an idle or
// slow client costs a socket and a coroutine frame, never a thread. Inference requests go to the
// Batcher, whose completion is posted back to the connection's strand: no I/O thread waits on a
// model. The main thread loads the model, then waits for SIGTERM/SIGINT and drains.
#include <openssl/crypto.h>
#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

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

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using Preds = std::vector<predict::Prediction>;

constexpr int kDefaultPort = 8080;
constexpr int kRetryAfterSeconds = 1;       // 429's hint: a batch takes well under a second
constexpr int kStopPollMs = 50;             // how often the main thread looks for a stop signal
// Idle keep-alive connections end after this (advertised in Keep-Alive: timeout=2).
constexpr int kKeepAliveTimeoutS = 2;
constexpr std::size_t kKeepAliveMaxRequests = 10000;
// The request line and all header lines together: browsers and SDKs send 1-2 KiB; more is an
// attack (one client streaming headers) and gets 431.
constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr std::size_t kReadChunk = 16 * 1024;
// Open connections are capped below the descriptor limit (model files, logs and the listener need
// some); beyond the cap a new connection gets 503 and is closed.
constexpr std::size_t kReservedFds = 64;
constexpr std::size_t kMinConnections = 16;
// After an error answer with the request body unread, the rest is read and discarded for this long
// before closing, so the client sees the answer instead of a reset.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr std::size_t kLingerBytes = 16 << 20;
// How long a drain waits for connections to finish (SageMaker sends SIGKILL 30 s after SIGTERM).
constexpr auto kDrainBound = std::chrono::seconds(25);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

enum class State { kLoading, kReady, kDraining };

const char* const kRoutes[] = {"/", "/ping", "/health", "/metrics", "/info", "/invocations", "/predict"};

// The metrics label of a path: one of ours, or "other" (unknown paths must not grow the set).
std::string_view route_of(std::string_view path) {
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
bool authorized(const std::string& key_digest, const Request& req) {
  if (key_digest.empty()) return true;
  const std::string_view header = req[http::field::authorization];
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0) return false;
  const std::string got = sha256_raw(header.substr(kBearer.size()));
  return CRYPTO_memcmp(got.data(), key_digest.data(), key_digest.size()) == 0;
}

void set_content(Response& res, std::string body, std::string_view type) {
  res.body() = std::move(body);
  res.set(http::field::content_type, type);
}

void json_error(Response& res, int status, const std::string& message) {
  res.result(static_cast<unsigned>(status));
  set_content(res, Json{{"error", message}}.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

bool is_jsonlines(const Request& req) {
  const std::string_view ct = req[http::field::content_type];
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

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// The path of a request target (the query is not part of the route).
std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

bool is_get_route(std::string_view path) {
  return path == "/" || path == "/ping" || path == "/health" || path == "/metrics" || path == "/info";
}

// One open connection, shared between its coroutine and a drain that may cancel it while idle.
struct Connection : std::enable_shared_from_this<Connection> {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool idle = false;  // waiting for a request's first byte (touched on the connection's strand only)
};

struct Service {
  Service(const ServeOptions& o, std::string digest) : options(o), model_label(o.batch.model), key_digest(std::move(digest)) {}

  const ServeOptions& options;
  std::string model_label;  // as given (directory or registry reference)
  std::string key_digest;
  Metrics metrics;
  std::atomic<State> state{State::kLoading};
  std::unique_ptr<predict::Predictor> predictor;
  std::unique_ptr<Batcher> batcher;

  // Open connections: counted for the cap, and reachable for a drain to close the idle ones.
  std::mutex conn_mu;
  std::set<Connection*> connections;
  bool draining = false;  // under conn_mu: no connection registers after the drain began

  bool add(Connection* c) {
    std::lock_guard<std::mutex> lock(conn_mu);
    if (draining) return false;
    connections.insert(c);
    return true;
  }
  void remove(Connection* c) {
    std::lock_guard<std::mutex> lock(conn_mu);
    connections.erase(c);
  }
  std::size_t open() {
    std::lock_guard<std::mutex> lock(conn_mu);
    return connections.size();
  }
  // Idle keep-alive connections close now; those mid-request finish their answer, then close.
  void drain_connections() {
    std::lock_guard<std::mutex> lock(conn_mu);
    draining = true;
    for (Connection* c : connections) {
      auto alive = c->weak_from_this().lock();
      if (!alive) continue;  // ending already
      asio::post(alive->stream.get_executor(), [alive] {
        if (alive->idle) alive->stream.cancel();
      });
    }
  }
  bool is_draining() {
    std::lock_guard<std::mutex> lock(conn_mu);
    return draining;
  }

  void info(Response& res) const {
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
    set_content(res, j.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
  }

  // Queues the texts and awaits the batcher's answer without holding the I/O thread: the
  // completion runs on the inference thread and posts the result to this coroutine's strand.
  asio::awaitable<Preds> infer(InferenceRequest& r, Batcher::Submitted& submitted) {
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr, Preds)>(
        [&](auto handler) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          auto resume = [h](std::exception_ptr e, Preds p) {
            auto ex = asio::get_associated_executor(*h);
            asio::post(ex, [h, e, p = std::move(p)]() mutable { std::move (*h)(e, std::move(p)); });
          };
          submitted = batcher->submit(std::move(r.texts), std::move(r.pairs), resume);
          if (submitted != Batcher::Submitted::kQueued) resume(nullptr, {});
        },
        asio::use_awaitable);
  }

  asio::awaitable<void> predict(const Request& req, Response& res) {
    if (state.load() == State::kLoading) co_return json_error(res, 503, "the model is loading");
    const bool jsonl = is_jsonlines(req);
    InferenceRequest r;
    try {
      r = jsonl ? parse_jsonl_request(req.body(), options.batch.text_field, options.batch.text_pair_field)
                : parse_hf_request(req.body());
    } catch (const Error& e) {
      co_return json_error(res, 400, e.what());
    }
    if (r.texts.size() > options.max_queue)
      co_return json_error(res, 413, fmt::format("{} inputs: at most {} per request", r.texts.size(), options.max_queue));
    Batcher::Submitted submitted = Batcher::Submitted::kQueued;
    Preds preds;
    try {
      preds = co_await infer(r, submitted);
    } catch (const std::exception& e) {
      log::error("inference failed: {}", e.what());
      co_return json_error(res, 500, "inference failed");
    }
    switch (submitted) {
      case Batcher::Submitted::kQueued: break;
      case Batcher::Submitted::kFull:
        res.set(http::field::retry_after, std::to_string(kRetryAfterSeconds));
        co_return json_error(res, 429, "queue full: retry later");
      case Batcher::Submitted::kStopped: co_return json_error(res, 503, "the server is shutting down");
    }
    for (std::size_t i = 0; i < preds.size(); ++i)
      if (!preds[i].error.empty())
        co_return json_error(res, 400, fmt::format("{} {}: {}", jsonl ? "record" : "input", i, preds[i].error));
    const auto& labels = predictor->labels();
    if (jsonl) {
      set_content(res, jsonl_response(r, preds, options.batch, labels, predictor->task()), "application/jsonlines");
    } else {
      set_content(res, hf_response(r, preds, labels, predictor->task()).dump(-1, ' ', false, Json::error_handler_t::replace),
                  "application/json");
    }
  }

  void health(Response& res) const {
    const State s = state.load();
    if (s == State::kReady) return set_content(res, "{\"status\":\"ok\"}", "application/json");
    json_error(res, 503, s == State::kLoading ? "loading" : "draining");
  }

  // The answer to one complete request (status, headers, body; framing is the session's).
  asio::awaitable<void> answer(const Request& req, std::string_view path, Response& res) {
    const bool get_route = is_get_route(path);
    const bool post_route = path == "/invocations" || path == "/predict";
    // Health checks (load balancers, SageMaker) and the page itself need no key; the page's own
    // requests send it. Unknown paths need one too: a prober learns nothing without the key.
    if (path != "/ping" && path != "/health" && path != "/" && !authorized(key_digest, req)) {
      res.set(http::field::www_authenticate, "Bearer");
      co_return json_error(res, 401, "missing or wrong API key (Authorization: Bearer <key>)");
    }
    if (!get_route && !post_route) co_return json_error(res, 404, fmt::format("{}: not found", path));
    const http::verb m = req.method();
    const bool allowed = get_route ? (m == http::verb::get || m == http::verb::head) : m == http::verb::post;
    if (!allowed) {
      const char* allow = get_route ? "GET, HEAD" : "POST";
      res.set(http::field::allow, allow);
      co_return json_error(res, 405, fmt::format("{} {}: method not allowed (allowed: {})", std::string_view(req.method_string()), path, allow));
    }
    if (post_route) co_return co_await predict(req, res);
    if (path == "/ping" || path == "/health") co_return health(res);
    if (path == "/") co_return set_content(res, std::string(index_page()), "text/html; charset=utf-8");
    if (path == "/metrics") {
      // The batcher exists once the state left kLoading (set before the state, read after it).
      co_return set_content(res, metrics.render(state.load() == State::kLoading ? 0 : batcher->depth()),
                            "text/plain; version=0.0.4");
    }
    if (state.load() == State::kLoading) co_return json_error(res, 503, "the model is loading");
    info(res);  // /info
  }

  void access(std::string_view method, std::string_view path, int status, std::size_t bytes_in, std::size_t bytes_out,
              Clock::time_point start, const std::string& remote) {
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    metrics.request(route_of(path), status, secs);
    log::info("access method={} path={} status={} bytes_in={} bytes_out={} ms={:.3f} remote={}", quoted(std::string(method)),
              quoted(std::string(path)), status, bytes_in, bytes_out, secs * 1000, remote);
  }

  // Reads and discards what the client still sends (bounded in time and bytes), then closes: an
  // answer written before the request was fully read would otherwise be lost to a TCP reset.
  static asio::awaitable<void> linger_close(beast::tcp_stream& stream) {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    const auto until = Clock::now() + kLingerTime;
    std::vector<char> sink(kReadChunk);
    std::size_t total = 0;
    while (!ec && total < kLingerBytes && Clock::now() < until) {
      stream.expires_at(until);
      auto [rec, n] = co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
      ec = rec;
      total += n;
    }
    stream.socket().close(ec);
  }

  // One connection: requests are read, answered and written one at a time, so pipelined requests
  // (already in `buffer`) are answered in order.
  asio::awaitable<void> session(std::shared_ptr<Connection> conn) {
    beast::tcp_stream& stream = conn->stream;
    beast::error_code ec;
    const auto ep = stream.socket().remote_endpoint(ec);
    const std::string remote = ec ? std::string("?") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    beast::flat_buffer buffer;
    for (std::size_t served = 0; served < kKeepAliveMaxRequests; ++served) {
      if (buffer.size() == 0) {
        // Idle: the first request gets the read timeout, later ones the keep-alive timeout.
        conn->idle = true;
        if (is_draining()) break;
        stream.expires_after(served == 0 ? seconds(options.read_timeout_s) : std::chrono::seconds(kKeepAliveTimeoutS));
        auto [rec, n] = co_await stream.async_read_some(buffer.prepare(kReadChunk), asio::as_tuple(asio::use_awaitable));
        conn->idle = false;
        if (rec) break;  // closed, timed out or cancelled by a drain: nothing to answer
        buffer.commit(n);
      }
      http::request_parser<http::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(options.max_body_bytes);
      // The whole header within the read timeout (a client trickling header bytes is cut off).
      stream.expires_after(seconds(options.read_timeout_s));
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      const Clock::time_point start = Clock::now();
      ec = hec;
      if (!ec) {
        const Request& head = parser.get();
        if (beast::iequals(head[http::field::expect], "100-continue") && !parser.is_done()) {
          stream.expires_after(seconds(options.write_timeout_s));
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(kContinue), asio::as_tuple(asio::use_awaitable));
          ec = wec;
        }
        // The body: each read within the read timeout, the whole bounded by --max-body-bytes.
        while (!ec && !parser.is_done()) {
          stream.expires_after(seconds(options.read_timeout_s));
          auto [rec, rn] = co_await http::async_read_some(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
          ec = rec;
        }
      }
      const bool have_head = parser.is_header_done();
      const std::string_view method = have_head ? std::string_view(parser.get().method_string()) : std::string_view("-");
      const std::string_view path = have_head ? path_of(std::string_view(parser.get().target())) : std::string_view("-");
      if (ec) {
        int status = 0;
        std::string message;
        if (ec == http::error::header_limit) {
          status = 431, message = fmt::format("request header over {} bytes", kHeaderLimit);
        } else if (ec == http::error::body_limit) {
          status = 413, message = "request body too large";
        } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          status = 400, message = fmt::format("malformed HTTP request: {}", ec.message());
        }
        if (status == 0) break;  // the client left or timed out: nobody to answer
        Response res{http::status::bad_request, 11};
        json_error(res, status, message);
        res.keep_alive(false);
        res.prepare_payload();
        access(method, path, status, 0, res.body().size(), start, remote);
        stream.expires_after(seconds(options.write_timeout_s));
        co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        co_await linger_close(stream);
        co_return;
      }
      Request& req = parser.get();
      Response res{http::status::ok, req.version()};
      try {
        co_await answer(req, path, res);
      } catch (const std::exception& e) {
        log::error("internal error: {}", e.what());
        res = Response{http::status::ok, req.version()};
        json_error(res, 500, "internal error");
      }
      const bool keep = req.keep_alive() && served + 1 < kKeepAliveMaxRequests && !is_draining();
      res.keep_alive(keep);
      if (keep) res.set(http::field::keep_alive, fmt::format("timeout={}", kKeepAliveTimeoutS));
      res.prepare_payload();
      const std::size_t bytes_out = res.body().size();
      if (req.method() == http::verb::head) {
        res.body().clear();
        res.content_length(bytes_out);
      }
      // Counted before the answer leaves: a client that reads /metrics right after its answer
      // (cli.serve does) must find its request there.
      access(method, path, res.result_int(), req.body().size(), bytes_out, start, remote);
      stream.expires_after(seconds(options.write_timeout_s));
      auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
      if (wec || !keep) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.socket().close(ec);
  }

  // Beyond the connection cap: a short 503, then close (the client may retry; those already
  // connected keep being served).
  static asio::awaitable<void> refuse(tcp::socket socket, double write_timeout_s) {
    beast::tcp_stream stream(std::move(socket));
    Response res{http::status::service_unavailable, 11};
    json_error(res, 503, "too many open connections: retry later");
    res.set(http::field::retry_after, std::to_string(kRetryAfterSeconds));
    res.keep_alive(false);
    res.prepare_payload();
    stream.expires_after(seconds(write_timeout_s));
    co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    co_await linger_close(stream);
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, asio::io_context& ioc, std::size_t max_connections) {
    asio::steady_timer backoff(acceptor.get_executor());
    bool warned = false;
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc),
                                                          asio::as_tuple(asio::use_awaitable));
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors (or a transient error): wait instead of spinning on accept.
        if (!warned) log::warn("accept: {} (backing off)", ec.message());
        warned = true;
        backoff.expires_after(kAcceptBackoff);
        co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      warned = false;
      const auto executor = socket.get_executor();
      if (open() >= max_connections) {
        asio::co_spawn(executor, refuse(std::move(socket), options.write_timeout_s), asio::detached);
        continue;
      }
      auto conn = std::make_shared<Connection>(std::move(socket));
      if (!add(conn.get())) continue;  // draining: the socket closes with conn
      asio::co_spawn(executor, session(conn), [this, conn](std::exception_ptr e) {
                       remove(conn.get());
                       if (!e) return;
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& x) {
                         log::error("connection: {}", x.what());
                       }
                     });
    }
  }
};

// Connections this process can hold open: its descriptor limit less what else it needs.
std::size_t connection_cap() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1 << 16;
  const auto n = static_cast<std::size_t>(rl.rlim_cur);
  return std::max(kMinConnections, n > kReservedFds ? n - kReservedFds : 0);
}

}  // namespace

Outcome run_server(const ServeOptions& o) {
  if (o.batch.model.empty()) throw Error(ErrorKind::kUsage, "--model is required");
  if (o.max_batch_size == 0) throw Error(ErrorKind::kUsage, "--max-batch-size must be at least 1");
  if (o.max_queue == 0) throw Error(ErrorKind::kUsage, "--max-queue must be at least 1");
  if (o.http_threads < 1) throw Error(ErrorKind::kUsage, "--http-threads must be at least 1");
  if (o.max_wait_ms < 0) throw Error(ErrorKind::kUsage, "--max-wait-ms must be 0 or more");
  const int port = resolve_port(o.port);
  Service service(o, api_key_digest(o.api_key_file));

  asio::io_context ioc(o.http_threads);
  tcp::acceptor acceptor(asio::make_strand(ioc));
  try {
    tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(o.host, std::to_string(port), tcp::resolver::passive);
    const tcp::endpoint endpoint = *endpoints.begin();
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error&) {
    throw Error(ErrorKind::kUnavailable, fmt::format("cannot listen on {}:{} (in use, or not an address of this host)",
                                                     o.host, port));
  }
  const int bound = acceptor.local_endpoint().port();
  const std::size_t max_connections = connection_cap();
  // The I/O threads run until the drain is over (the guard keeps them while nothing is pending).
  auto guard = asio::make_work_guard(ioc);
  asio::co_spawn(acceptor.get_executor(), service.accept_loop(acceptor, ioc, max_connections), asio::detached);
  std::vector<std::thread> io;
  for (int i = 0; i < o.http_threads; ++i) io.emplace_back([&ioc] { ioc.run(); });
  // Serving starts before the model loads, so health checks see 503 "loading" instead of no answer.
  log::info("listening on http://{}:{} ({} I/O threads, at most {} connections)", o.host, bound, o.http_threads,
            max_connections);
  auto stop_accepting = [&] {
    std::promise<void> closed;
    asio::post(acceptor.get_executor(), [&] {
      beast::error_code ec;
      acceptor.close(ec);
      closed.set_value();
    });
    closed.get_future().wait();
  };
  auto stop_io = [&] {
    guard.reset();
    ioc.stop();
    for (auto& t : io) t.join();
  };
  try {
    const auto start = Clock::now();
    const std::string dir = resolve_model(o.batch.model, o.cache_dir, o.storage);
    predict::PredictorOptions po = o.batch.predictor;
    po.batch_size = o.max_batch_size;
    po.stop_on_signal = false;  // SIGTERM drains: accepted requests are answered
    // The batcher's one inference thread hands the predictor one batch at a time: all threads on it.
    po.parallel_batches = 1;
    service.predictor = std::make_unique<predict::Predictor>(dir, po);
    const double load = std::chrono::duration<double>(Clock::now() - start).count();
    service.metrics.model_loaded(load);
    BatcherOptions bo{o.max_batch_size, o.max_batch_tokens, std::chrono::milliseconds(o.max_wait_ms), o.max_queue,
                      service.predictor->max_length()};
    service.batcher = std::make_unique<Batcher>(*service.predictor, bo, service.metrics);
    log::info("model {} loaded in {:.2f} s: {} labels, max_length {}, device {}", o.batch.model, load,
              service.predictor->labels().size(), service.predictor->max_length(), service.predictor->device());
  } catch (...) {
    stop_accepting();
    stop_io();
    throw;
  }
  service.state = State::kReady;
  log::info("ready");
  while (!stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(kStopPollMs));
  // Drain: health turns 503, the listening socket closes (no new connections), idle keep-alive
  // connections close, requests being read or waiting in the batcher are answered (the batcher
  // keeps running until their connections are done), then the inference thread ends.
  service.state = State::kDraining;
  log::info("signal {}: draining ({} texts queued)", stop_signal(), service.batcher->depth());
  stop_accepting();
  service.drain_connections();
  const auto deadline = Clock::now() + kDrainBound;
  while (service.open() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(kStopPollMs / 5));
  if (service.open() > 0) log::warn("{} connections still open after the drain bound: closing them", service.open());
  service.batcher->stop();
  stop_io();
  log::info("stopped");
  return Outcome::kOk;
}

}  // namespace hf::serve
