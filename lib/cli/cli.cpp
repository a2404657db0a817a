// Tool run wrapper. Exit codes are decided here and nowhere else (see exit_codes.h).
#include "cli/cli.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>

#include "cli/build_info.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "storage/storage.h"

namespace hf::cli {
namespace {

// "--learning-rate" -> "learning_rate": YAML keys are the HF TrainingArguments names.
std::string yaml_key(const CLI::Option* opt) {
  if (opt->get_lnames().empty()) return {};
  std::string key = opt->get_lnames().front();
  for (char& c : key)
    if (c == '-') c = '_';
  return key;
}

bool is_shared_flag(const std::string& key) {
  static const std::set<std::string> kShared = {"help", "version", "config", "verbose", "quiet",
                                                "log_format"};
  return kShared.count(key) > 0;
}

// "http://user:pw@host:9000/x" -> "http://host:9000/x": URL userinfo is a credential. A saved
// config drops it whole (storage::redact_url keeps the user name for messages, where it helps).
std::string without_userinfo(const std::string& url) {
  const std::size_t scheme = url.find("://");
  const std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const std::size_t end = std::min(url.find_first_of("/?#", start), url.size());
  const std::size_t at = url.rfind('@', end == 0 ? 0 : end - 1);
  if (at == std::string::npos || at < start) return url;
  return url.substr(0, start) + url.substr(at + 1);
}

}  // namespace

std::string version_text(const std::string& tool) {
  std::string s = tool + " (hfkit) " + kHfkitVersion + "\n";
  s += std::string("commit: ") + kGitCommit + "\n";
  s += std::string("compiler: ") + kCompiler + "\n";
  s += std::string("libtorch: ") + kTorchVersion + "\n";
  s += std::string("cuda: ") + kCudaInfo + "\n";
  return s;
}

Tool::Tool(std::string name, std::string description, std::string examples)
    : name_(std::move(name)), app_(std::move(description), name_) {
  app_.option_defaults()->always_capture_default();
  app_.set_version_flag("--version", [this] { return version_text(name_); }, "Print version and build info");
  app_.add_option("--config", config_path_, "YAML file of options (keys are the long flag names with '_')")
      ->envname("HFKIT_CONFIG");
  app_.add_flag("-v,--verbose", verbose_, "More logging (debug)");
  app_.add_flag("-q,--quiet", quiet_, "Only errors on stderr");
  app_.add_option("--log-format", log_format_, "Log format on stderr")
      ->check(CLI::IsMember({"text", "json"}))
      ->envname("HFKIT_LOG_FORMAT");
  app_.footer("Examples:\n" + examples + "\n" + kExitCodeHelp +
              "\nPrecedence: flag > environment (HFKIT_*) > --config YAML > default.");
}

void add_storage_options(CLI::App& app, storage::Options& s) {
  app.add_option("--endpoint-url", s.endpoint_url,
                 "S3 endpoint, e.g. http://127.0.0.1:9000 (env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)");
  app.add_option("--region", s.region, "Region (env AWS_REGION, AWS_DEFAULT_REGION; profile; us-east-1)");
  app.add_option("--profile", s.profile, "Credentials profile (env AWS_PROFILE)");
  app.add_flag("--path-style", s.path_style, "Path-style addressing (always on for IP/localhost endpoints)");
  app.add_flag_callback("--no-verify-ssl", [&s] { s.verify_ssl = false; },
                        "Do not verify TLS certificates (testing only)");
  app.add_option("--max-attempts", s.max_attempts, "Tries per request, with exponential backoff and jitter")
      ->check(CLI::Range(1, 20))->envname("AWS_MAX_ATTEMPTS");
  app.add_option("--connect-timeout", s.connect_timeout_s, "Seconds to wait for a connection");
  app.add_option("--read-timeout", s.read_timeout_s, "Seconds without progress before a transfer is retried");
}

void Tool::require(CLI::Option* option) { required_.push_back(option); }

void Tool::apply_config_file() {
  if (config_path_.empty()) return;
  ConfigFile cfg = ConfigFile::load(config_path_);
  std::map<std::string, CLI::Option*> by_key;
  // The tool's options and those of the subcommand given (hf-sync push --delete ...): a key of
  // another subcommand stays unknown.
  std::vector<CLI::Option*> options = app_.get_options();
  for (CLI::App* sub : app_.get_subcommands())
    for (CLI::Option* opt : sub->get_options()) options.push_back(opt);
  for (CLI::Option* opt : options) {
    std::string key = yaml_key(opt);
    if (!key.empty() && !is_shared_flag(key)) by_key[key] = opt;
  }
  for (const auto& [key, entry] : cfg.entries()) {
    auto it = by_key.find(key);
    if (it == by_key.end())
      throw Error(ErrorKind::kConfig, Where{cfg.path(), entry.line, key}, "unknown key");
    CLI::Option* opt = it->second;
    if (opt->count() > 0) continue;  // a flag or environment variable already set it
    try {
      for (const auto& v : entry.values) opt->add_result(v);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(ErrorKind::kConfig, Where{cfg.path(), entry.line, key}, e.what());
    }
  }
}

void Tool::check_required() {
  for (CLI::Option* opt : required_) {
    if (opt->count() == 0)
      throw Error(ErrorKind::kUsage, "missing " + opt->get_name() + " (or '" + yaml_key(opt) +
                                         "' in --config)");
  }
}

std::string Tool::resolved_config_yaml() const {
  // yaml-cpp's emitter quotes and escapes every value, so any string (quotes, backslashes, colons,
  // newlines, UTF-8) reads back through --config as it was.
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const CLI::Option* opt : app_.get_options()) {
    std::string key = yaml_key(opt);
    if (key.empty() || is_shared_flag(key)) continue;
    std::vector<std::string> values = opt->results();
    if (values.empty()) {
      std::string d = opt->get_default_str();
      if (d.empty()) continue;
      values = {d};
    }
    // The file is saved beside the model and uploaded with it: never a secret in it.
    if (key.find("endpoint_url") != std::string::npos)
      for (std::string& v : values) v = without_userinfo(v);
    out << YAML::Key << key << YAML::Value;
    if (values.size() == 1) {
      out << YAML::DoubleQuoted << values[0];
    } else {
      out << YAML::BeginSeq;
      for (const auto& v : values) out << YAML::DoubleQuoted << v;
      out << YAML::EndSeq;
    }
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void exit_now(int code) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  std::exit(code);
#else
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(nullptr);
  std::_Exit(code);
#endif
}

int Tool::run(int argc, char** argv, const std::function<Outcome()>& body) {
  // libtorch backs CPU tensors of 2 MiB and more with transparent huge pages when asked (PyTorch's
  // THP_MEM_ALLOC_ENABLE, read at its first such allocation): a model's weights then fault in 2 MiB
  // at a time rather than 4 KiB (~12k fewer page faults loading MiniLM, ~0.05 s of a one-record
  // hf-predict run), and large activations miss the TLB less. A value the user set wins.
  ::setenv("THP_MEM_ALLOC_ENABLE", "1", /*overwrite=*/0);
  install_signal_handlers();
  log::configure(name_, log::Level::kInfo, log::Format::kText);
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app_.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app_.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    std::cout << version_text(name_);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::cerr << name_ << ": error: " << e.what() << "\nTry '" << name_ << " --help'.\n";
    return kExitUsage;
  }
  log::Level level = quiet_ ? log::Level::kError : verbose_ > 0 ? log::Level::kDebug : log::Level::kInfo;
  log::configure(name_, level, log_format_ == "json" ? log::Format::kJson : log::Format::kText);

  Outcome outcome = Outcome::kOk;
  try {
    apply_config_file();
    check_required();
    outcome = body();
  } catch (const BrokenPipe&) {
    return kExitOk;  // the reader went away (`| head`): not an error
  } catch (const Error& e) {
    log::error("{}", e.what());
    return exit_code_for(e.kind());
  } catch (const std::bad_alloc&) {
    log::error("out of memory");
    return kExitSoftware;
  } catch (const std::exception& e) {
    log::error("internal error: {}", e.what());
    return kExitSoftware;
  }
  int rc = exit_code_for(outcome);
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    if (errno == EPIPE) return rc;
    log::error("cannot write to stdout");
    return kExitIoErr;
  }
  if (outcome == Outcome::kOk && stop_requested() && !stop_is_success_) return 128 + stop_signal();
  return rc;
}

}  // namespace hf::cli
