// Library-level scenarios run by the test/s3 harness against a live moto endpoint (the harness
// starts moto and the fault proxy and passes AWS_* in the environment): web identity refresh and
// the checkpoint API hf-train uses. Prints JSON lines for the harness to check.
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "storage/credentials.h"
#include "storage/storage.h"

using namespace hf::storage;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// hf-train's names (lib/train owns them; this driver tests the storage protocol with the same).
CheckpointLayout layout() {
  return {".complete", [](std::string_view name) -> std::optional<std::int64_t> {
            const std::string_view prefix = "checkpoint-";
            if (!name.starts_with(prefix) || name.size() == prefix.size()) return std::nullopt;
            for (char c : name.substr(prefix.size()))
              if (c < '0' || c > '9') return std::nullopt;
            return std::stoll(std::string(name.substr(prefix.size())));
          }};
}

// save_total_limit = n: the newest n.
KeepPolicy keep_newest(std::size_t n) {
  return [n](const std::vector<RemoteCheckpoint>& complete) {
    std::vector<std::string> keep;
    for (std::size_t i = complete.size() > n ? complete.size() - n : 0; i < complete.size(); ++i)
      keep.push_back(complete[i].name);
    return keep;
  };
}

void make_checkpoint(const std::string& dir, int step, const CheckpointLayout& ck) {
  fs::create_directories(dir);
  hf::write_file_atomic(dir + "/model.safetensors", std::string(200000 + step, static_cast<char>('a' + step % 26)));
  hf::write_file_atomic(dir + "/trainer_state.json", json{{"global_step", step}}.dump());
  hf::write_file_atomic(dir + "/" + ck.marker, "{}");
}

json status_json(const UploaderStatus& s) {
  return {{"uploaded", s.uploaded}, {"dropped", s.dropped}, {"failed_attempts", s.failed_attempts},
          {"pending", s.pending}, {"last_uploaded", s.last_uploaded}, {"last_error", s.last_error}};
}

void wait_for_file(const std::string& path, int seconds) {
  for (int i = 0; i < seconds * 20 && !fs::exists(path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

Options options_from_env() {
  Options o;
  o.jobs = 4;
  o.max_attempts = 2;
  o.read_timeout_s = 3;
  o.connect_timeout_s = 2;
  return o;
}

UploaderOptions uploader_options(const Url& url) {
  UploaderOptions uo;
  uo.url = url;
  uo.storage = options_from_env();
  uo.layout = layout();
  return uo;
}

int refresh_token(const std::string& token_file) {
  CredentialOptions co;
  co.refresh_margin = std::chrono::hours(24 * 365);  // every get() refreshes
  CredentialProvider p(co);
  hf::write_file_atomic(token_file, "token-A");
  auto a = p.get();
  hf::write_file_atomic(token_file, "token-B");
  auto b = p.get();
  std::cout << json{{"source", p.source()}, {"first", a.access_key_id}, {"second", b.access_key_id},
                    {"has_session", !b.session_token.empty()}}
                   .dump()
            << std::endl;
  return 0;
}

int checkpoints(const std::string& url_text, const std::string& root) {
  Url url = parse_url(url_text);
  Options o = options_from_env();
  const CheckpointLayout ck = layout();
  std::cout << json{{"latest_before", find_latest_complete_checkpoint(url, o, ck).has_value()}}.dump() << std::endl;
  {
    UploaderOptions uo = uploader_options(url);
    uo.keep = keep_newest(2);
    uo.max_pending = 8;
    Uploader up(uo);
    for (int step : {100, 200, 300}) {
      std::string dir = root + "/checkpoint-" + std::to_string(step);
      make_checkpoint(dir, step, ck);
      up.enqueue(dir);
    }
    bool drained = up.drain(std::chrono::seconds(60));
    std::cout << json{{"drained", drained}, {"status", status_json(up.status())}}.dump() << std::endl;
  }
  json names = json::array();
  for (const auto& c : list_complete_checkpoints(url, o, ck)) names.push_back(c.name);
  auto latest = find_latest_complete_checkpoint(url, o, ck);
  std::string local = download_checkpoint(*latest, root + "/restored", o, ck);
  std::cout << json{{"complete", names}, {"latest", latest->name}, {"step", latest->step}, {"downloaded", local}}.dump()
            << std::endl;
  return 0;
}

int outage(const std::string& url_text, const std::string& root, const std::string& go_file) {
  Url url = parse_url(url_text);
  const CheckpointLayout ck = layout();
  UploaderOptions uo = uploader_options(url);
  uo.max_pending = 1;
  uo.retry_delay_max_s = 1;
  Uploader up(uo);
  for (int step : {1, 2, 3}) {
    std::string dir = root + "/checkpoint-" + std::to_string(step);
    make_checkpoint(dir, step, ck);
    up.enqueue(dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // training goes on meanwhile
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::cout << json{{"during", status_json(up.status())}}.dump() << std::endl;
  hf::write_file_atomic(go_file + ".ready", "1");
  wait_for_file(go_file, 60);  // the harness restores the endpoint
  bool drained = up.drain(std::chrono::seconds(60));
  std::cout << json{{"drained", drained}, {"after", status_json(up.status())}}.dump() << std::endl;
  return 0;
}

int latest(const std::string& url_text) {
  auto c = find_latest_complete_checkpoint(parse_url(url_text), options_from_env(), layout());
  std::cout << json{{"latest", c ? c->name : ""}}.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hf::log::configure("storage_driver", std::getenv("DRIVER_DEBUG") ? hf::log::Level::kDebug : hf::log::Level::kInfo,
                     hf::log::Format::kText);
  try {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "refresh-token" && argc == 3) return refresh_token(argv[2]);
    if (cmd == "checkpoints" && argc == 4) return checkpoints(argv[2], argv[3]);
    if (cmd == "outage" && argc == 5) return outage(argv[2], argv[3], argv[4]);
    if (cmd == "latest" && argc == 3) return latest(argv[2]);
    std::cerr << "usage: storage_driver refresh-token FILE | checkpoints URL DIR | outage URL DIR GOFILE | latest URL\n";
    return 64;
  } catch (const hf::Error& e) {
    std::cerr << "storage_driver: error: " << e.what() << "\n";
    return 1;
  }
}
