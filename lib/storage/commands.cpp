// hf-sync's subcommands over the library: push, pull, ls, rm, presign. A watcher thread turns
// the process-wide stop request (SIGINT/SIGTERM) into the operation's cancel flag, so an
// interrupted run removes its temp files and aborts multipart uploads before exiting.
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <ostream>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "storage/storage.h"

namespace hf::storage {
namespace {

// Sets `flag` once a stop signal arrives; joined on destruction.
class StopWatcher {
 public:
  StopWatcher() : thread_([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      if (stop_requested()) {
        flag_.store(true);
        return;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }) {}
  ~StopWatcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  const std::atomic<bool>* flag() const { return &flag_; }
  bool fired() const { return flag_.load(); }

 private:
  std::atomic<bool> flag_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", v, units[u]) : fmt::format("{:.1f} {}", v, units[u]);
}

void report(const SyncSummary& s, const CommandOptions& options, std::ostream& out) {
  if (options.json) {
    out << summary_json(s) << "\n";
    return;
  }
  if (s.dry_run) {
    for (const auto& a : s.actions) out << "(dry run) " << a.kind << ": " << printable(a.path) << "\n";
  }
  log::info("{} {} -> {}: {} transferred ({}), {} unchanged, {} deleted in {:.2f} s", s.command, s.source,
            s.destination, s.files_transferred, human_bytes(s.bytes_transferred), s.files_unchanged,
            s.files_deleted, s.seconds);
}

// Runs a sync with signal-driven cancellation; an interrupted run returns kOk so the run wrapper
// reports 128+signal after this clean stop.
template <typename Fn>
Outcome with_cancel(const CommandOptions& options, Fn fn) {
  StopWatcher watcher;
  Options o = options.storage;
  if (o.cancel == nullptr) o.cancel = watcher.flag();
  try {
    return fn(o);
  } catch (const Error& e) {
    if (watcher.fired()) {
      log::warn("interrupted: temp files removed, unfinished uploads aborted");
      return Outcome::kOk;
    }
    throw;
  }
}

Url require_s3(const std::string& text, const char* what) {
  Url u = parse_url(text);
  if (u.scheme != Scheme::kS3 && std::string(what) == "presign")
    throw Error(ErrorKind::kUsage, "presign needs an s3:// URL, got '" + text + "'");
  return u;
}

}  // namespace

Outcome run_push(const CommandOptions& options, std::ostream& out) {
  Url dest = parse_url(options.destination);
  return with_cancel(options, [&](const Options& o) {
    report(push(options.source, dest, o, options.sync), options, out);
    return Outcome::kOk;
  });
}

Outcome run_pull(const CommandOptions& options, std::ostream& out) {
  Url src = parse_url(options.source);
  return with_cancel(options, [&](const Options& o) {
    report(pull(src, options.destination, o, options.sync), options, out);
    return Outcome::kOk;
  });
}

Outcome run_ls(const CommandOptions& options, std::ostream& out) {
  Url url = parse_url(options.source);
  std::unique_ptr<Backend> backend = open_backend(url, options.storage);
  auto print = [&](const ObjectInfo& o) {
    if (!options.sync.filter.selected(o.key)) return;
    if (options.json) {
      out << nlohmann::json{{"key", o.key}, {"size", o.size}, {"etag", o.etag}, {"last_modified", o.last_modified}}
                 .dump()
          << "\n";
    } else {
      out << fmt::format("{:<24}  {:>12}  {}\n", printable(o.last_modified), o.size, printable(o.key));
    }
  };
  if (options.recursive) {
    for (const auto& o : backend->list()) print(o);
    return Outcome::kOk;
  }
  DirListing d = backend->list_dir("");
  if (d.objects.empty() && d.prefixes.empty()) {
    // The URL may name one object rather than a "directory".
    if (auto h = backend->head("")) {
      h->key = url.scheme == Scheme::kS3 ? url.prefix : url.path;
      print(*h);
      return Outcome::kOk;
    }
  }
  for (const auto& p : d.prefixes) {
    if (options.json) {
      out << nlohmann::json{{"prefix", p}}.dump() << "\n";
    } else {
      out << fmt::format("{:<24}  {:>12}  {}\n", "", "DIR", printable(p));
    }
  }
  for (const auto& o : d.objects) print(o);
  return Outcome::kOk;
}

Outcome run_rm(const CommandOptions& options, std::ostream& out) {
  Url url = parse_url(options.source);
  std::unique_ptr<Backend> backend = open_backend(url, options.storage);
  std::vector<std::string> keys;
  if (options.recursive) {
    for (const auto& o : backend->list())
      if (options.sync.filter.selected(o.key)) keys.push_back(o.key);
  } else {
    if (!backend->head("")) throw Error(ErrorKind::kNoInput, url.str() + ": no such object");
    keys.push_back("");
  }
  for (const auto& k : keys) {
    std::string shown = k.empty() ? url.str() : url.child(k).str();
    if (options.sync.dry_run) {
      out << "(dry run) delete: " << printable(shown) << "\n";
    } else if (!options.json) {
      log::debug("delete {}", printable(shown));
    }
  }
  if (!options.sync.dry_run) backend->remove(keys);
  if (options.json) {
    out << nlohmann::json{{"command", "rm"}, {"url", url.str()}, {"dry_run", options.sync.dry_run},
                          {"files_deleted", options.sync.dry_run ? 0 : keys.size()}}
               .dump()
        << "\n";
  } else {
    log::info("{} {} object(s) under {}", options.sync.dry_run ? "would delete" : "deleted", keys.size(), url.str());
  }
  return Outcome::kOk;
}

Outcome run_presign(const CommandOptions& options, std::ostream& out) {
  Url url = require_s3(options.source, "presign");
  if (url.prefix.empty()) throw Error(ErrorKind::kUsage, "presign needs an object key: s3://bucket/key");
  if (options.method != "GET" && options.method != "PUT")
    throw Error(ErrorKind::kUsage, "--method must be GET or PUT");
  std::unique_ptr<Backend> backend = open_backend(url, options.storage);
  out << backend->presign("", std::chrono::seconds(options.expires_in_s), options.method) << "\n";
  return Outcome::kOk;
}

}  // namespace hf::storage
