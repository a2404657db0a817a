// The run wrapper every tool's main() goes through: shared flags (-v, -q, --log-format, --config,
// --version), YAML config merging with precedence flag > env > config file > default, logging and
// signal set-up, and the single place where exceptions become one error line and an exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "cli/exit_codes.h"

namespace hf::storage {
struct Options;
}

namespace hf::cli {

class Tool {
 public:
  // `examples` is printed at the end of --help (one example per line, already indented).
  Tool(std::string name, std::string description, std::string examples);

  CLI::App& app() { return app_; }
  // Marks an option required after config merging (so it may come from the YAML file instead).
  void require(CLI::Option* option);
  // Parses argv, merges config, sets up logging and signals, runs body and maps its outcome (or the
  // hf::Error it throws) to an exit code. A run that ends kOk after a stop signal exits 128+N.
  int run(int argc, char** argv, const std::function<Outcome()>& body);
  // The effective options as YAML (flags, env and config file merged), for saving beside outputs.
  std::string resolved_config_yaml() const;
  const std::string& name() const { return name_; }
  // For a server, SIGTERM/SIGINT is how it is asked to stop: a kOk run after one exits 0, not 128+N.
  void set_stop_is_success(bool on) { stop_is_success_ = on; }

 private:
  void apply_config_file();
  void check_required();

  std::string name_;
  CLI::App app_;
  std::string config_path_;
  std::string log_format_ = "text";
  int verbose_ = 0;
  bool quiet_ = false;
  bool stop_is_success_ = false;
  std::vector<CLI::Option*> required_;
};

// The remote-store connection flags, declared once for every tool that talks to S3 (hf-sync,
// hf-train --sync-to): --endpoint-url, --region, --profile, --path-style, --no-verify-ssl,
// --max-attempts (env AWS_MAX_ATTEMPTS), --connect-timeout, --read-timeout. Parsing fills
// `options`, which must outlive the parse.
void add_storage_options(CLI::App& app, storage::Options& options);

// Ends the process with `code` after flushing the C and C++ streams, without static destructors:
// libtorch's deregister thousands of operators, ~0.12 s at every exit (a quarter of a one-record
// hf-predict run). Every tool's main() ends with exit_now(tool.run(...)), when run() has closed
// what the tool wrote. Builds with a sanitizer exit normally, so that LeakSanitizer still reports.
[[noreturn]] void exit_now(int code);

// Version text: tool name, hfkit version, commit, compiler, libtorch, CUDA.
std::string version_text(const std::string& tool);

}  // namespace hf::cli
