// lib/cli: option precedence (flag > env > YAML > default), config file errors by file:line,
// required options met from YAML, the exit code of every ErrorKind and Outcome, the run wrapper's
// mapping of what a body returns or throws, duplicate flags, and the version text.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/exit_codes.h"
#include "core/error.h"
#include "support/temp_dir.h"

using hf::ErrorKind;
using hf::Outcome;
using hf::cli::Tool;

namespace {

constexpr const char* kEnv = "HFKIT_TEST_LEARNING_RATE";

struct Ran {
  int rc = -1;
  std::string out;  // what went to fd 1 (std::cout included)
  std::string err;  // what went to fd 2 (the logger writes there directly)
};

// Points fd 1 and 2 at files for the duration of a Tool::run, so that its output can be checked.
class Capture {
 public:
  explicit Capture(const hf::test::TempDir& dir) : out_path_(dir.file("stdout")), err_path_(dir.file("stderr")) {
    flush();
    saved_out_ = ::dup(STDOUT_FILENO);
    saved_err_ = ::dup(STDERR_FILENO);
    redirect(out_path_, STDOUT_FILENO);
    redirect(err_path_, STDERR_FILENO);
  }
  ~Capture() { restore(); }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  void restore() {
    if (saved_out_ < 0) return;
    flush();
    ::dup2(saved_out_, STDOUT_FILENO);
    ::dup2(saved_err_, STDERR_FILENO);
    ::close(saved_out_);
    ::close(saved_err_);
    saved_out_ = saved_err_ = -1;
  }
  std::string out() const { return slurp(out_path_); }
  std::string err() const { return slurp(err_path_); }

 private:
  static void flush() {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(stdout);
    std::fflush(stderr);
  }
  static void redirect(const std::string& path, int fd) {
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    ::dup2(::fileno(f), fd);
    std::fclose(f);
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string out_path_, err_path_;
  int saved_out_ = -1, saved_err_ = -1;
};

// Runs `tool` on `args` (the tool name is prepended) with `body`, capturing its output.
Ran run(Tool& tool, std::vector<std::string> args, const std::function<Outcome()>& body) {
  args.insert(args.begin(), tool.name());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  hf::test::TempDir dir;
  Capture capture(dir);
  Ran r;
  r.rc = tool.run(static_cast<int>(argv.size()), argv.data(), body);
  capture.restore();
  r.out = capture.out();
  r.err = capture.err();
  return r;
}

std::string write_yaml(const hf::test::TempDir& dir, const std::string& text) {
  std::string path = dir.file("job.yaml");
  std::ofstream(path) << text;
  return path;
}

// A tool with one option as the trainers have them: a default, an env var, a YAML key.
struct RateTool {
  Tool tool{"test-tool", "A tool for lib/cli's tests.", "  test-tool --learning-rate 3"};
  double rate = 1.0;
  RateTool() { tool.app().add_option("--learning-rate", rate, "Step size")->envname(kEnv); }
};

struct EnvVar {
  EnvVar(const char* name, const char* value) : name_(name) {
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~EnvVar() { ::unsetenv(name_); }
  const char* name_;
};

}  // namespace

TEST_CASE("cli: precedence is flag over env over YAML over default") {
  hf::test::TempDir dir;
  std::string yaml = write_yaml(dir, "learning_rate: 2\n");
  struct Case {
    bool flag, env, config;
    double want;
  };
  const Case cases[] = {
      {false, false, false, 1}, {false, false, true, 2}, {false, true, true, 3},
      {true, true, true, 4},    {true, false, true, 4},  {false, true, false, 3},
  };
  for (const auto& c : cases) {
    CAPTURE(c.flag);
    CAPTURE(c.env);
    CAPTURE(c.config);
    RateTool t;
    EnvVar env(kEnv, c.env ? "3" : nullptr);
    std::vector<std::string> args;
    if (c.config) args.insert(args.end(), {"--config", yaml});
    if (c.flag) args.insert(args.end(), {"--learning-rate", "4"});
    double seen = -1;
    Ran r = run(t.tool, args, [&] {
      seen = t.rate;
      return Outcome::kOk;
    });
    CHECK(r.rc == 0);
    CHECK(seen == c.want);
    // What is saved beside the outputs is what the run used.
    std::ostringstream want;
    want << "learning_rate: \"" << c.want << "\"";
    CHECK(t.tool.resolved_config_yaml().find(want.str()) != std::string::npos);
  }
}

TEST_CASE("cli: config file errors are exit 78 naming file, line and key") {
  hf::test::TempDir dir;
  struct Case {
    const char* yaml;
    const char* fragment;
  };
  const Case cases[] = {
      {"learning_rate: 2\nlerning_rate: 3\n", ":2: field \"lerning_rate\": unknown key"},
      {"\n\nlearning_rate: fast\n", ":3: field \"learning_rate\": "},
      {"verbose: 1\n", ":1: field \"verbose\": unknown key"},  // shared flags are not config keys
  };
  for (const auto& c : cases) {
    CAPTURE(c.yaml);
    RateTool t;
    std::string path = write_yaml(dir, c.yaml);
    bool body_ran = false;
    Ran r = run(t.tool, {"--config", path}, [&] {
      body_ran = true;
      return Outcome::kOk;
    });
    CHECK(r.rc == hf::cli::kExitConfig);
    CHECK_FALSE(body_ran);
    CHECK(r.out.empty());
    CHECK(r.err.find("test-tool: error: " + path + c.fragment) != std::string::npos);
    CHECK(r.err.find('\n') == r.err.size() - 1);  // one line
  }
  RateTool t;
  Ran r = run(t.tool, {"--config", dir.file("missing.yaml")}, [] { return Outcome::kOk; });
  CHECK(r.rc == hf::cli::kExitNoInput);
}

TEST_CASE("cli: a required option may come from YAML, and its absence is a usage error") {
  hf::test::TempDir dir;
  auto make = [](Tool& tool, std::string& model) {
    tool.require(tool.app().add_option("--model-name-or-path", model, "Base model"));
  };
  {
    Tool tool("test-tool", "d", "  e");
    std::string model;
    make(tool, model);
    Ran r = run(tool, {"--config", write_yaml(dir, "model_name_or_path: bert\n")}, [] { return Outcome::kOk; });
    CHECK(r.rc == 0);
    CHECK(model == "bert");
  }
  {
    Tool tool("test-tool", "d", "  e");
    std::string model;
    make(tool, model);
    bool body_ran = false;
    Ran r = run(tool, {}, [&] {
      body_ran = true;
      return Outcome::kOk;
    });
    CHECK(r.rc == hf::cli::kExitUsage);
    CHECK_FALSE(body_ran);
    CHECK(r.err.find("missing --model-name-or-path (or 'model_name_or_path' in --config)") != std::string::npos);
  }
}

TEST_CASE("cli: every ErrorKind and Outcome has its own documented exit code") {
  struct KindCase {
    ErrorKind kind;
    int code;
  };
  const KindCase kinds[] = {
      {ErrorKind::kUsage, 64},       {ErrorKind::kDataErr, 65},  {ErrorKind::kNoInput, 66},
      {ErrorKind::kUnavailable, 69}, {ErrorKind::kInternal, 70}, {ErrorKind::kCantCreate, 73},
      {ErrorKind::kIo, 74},          {ErrorKind::kTempFail, 75}, {ErrorKind::kNoPerm, 77},
      {ErrorKind::kConfig, 78},
  };
  std::set<int> codes;
  for (const auto& c : kinds) {
    CHECK(hf::cli::exit_code_for(c.kind) == c.code);
    codes.insert(c.code);
    // Every code is in the --help text.
    CHECK(std::string(hf::cli::kExitCodeHelp).find(std::to_string(c.code) + " ") != std::string::npos);
  }
  CHECK(codes.size() == std::size(kinds));
  // The table covers the enum: kConfig is its last value.
  CHECK(static_cast<int>(ErrorKind::kConfig) + 1 == static_cast<int>(std::size(kinds)));
  CHECK(hf::cli::exit_code_for(Outcome::kOk) == 0);
  CHECK(hf::cli::exit_code_for(Outcome::kNo) == 1);
  CHECK(hf::cli::exit_code_for(Outcome::kPreempted) == 75);
  CHECK(hf::cli::exit_code_for(static_cast<ErrorKind>(99)) == hf::cli::kExitSoftware);
}

TEST_CASE("cli: the run wrapper maps what the body returns or throws to one error line and a code") {
  struct Case {
    std::function<Outcome()> body;
    int code;
    const char* line;  // the stderr line, "" for none
  };
  const Case cases[] = {
      {[] { return Outcome::kOk; }, 0, ""},
      {[] { return Outcome::kNo; }, 1, ""},
      {[] { return Outcome::kPreempted; }, 75, ""},
      {[]() -> Outcome { throw hf::Error(ErrorKind::kDataErr, hf::Where{"in.jsonl", 7, "label"}, "expected integer"); },
       65, "test-tool: error: in.jsonl:7: field \"label\": expected integer\n"},
      {[]() -> Outcome { throw hf::BrokenPipe("<stdout>"); }, 0, ""},
      {[]() -> Outcome { throw std::runtime_error("boom"); }, 70, "test-tool: error: internal error: boom\n"},
      {[]() -> Outcome { throw std::bad_alloc(); }, 70, "test-tool: error: out of memory\n"},
  };
  for (const auto& c : cases) {
    Tool tool("test-tool", "d", "  e");
    Ran r = run(tool, {}, c.body);
    CHECK(r.rc == c.code);
    CHECK(r.err == c.line);
    CHECK(r.out.empty());
  }
}

TEST_CASE("cli: bad flags are exit 64, help and version go to stdout with exit 0") {
  RateTool t;
  Ran bad = run(t.tool, {"--no-such-flag"}, [] { return Outcome::kOk; });
  CHECK(bad.rc == hf::cli::kExitUsage);
  CHECK(bad.out.empty());
  CHECK(bad.err.rfind("test-tool: error: ", 0) == 0);

  RateTool h;
  Ran help = run(h.tool, {"--help"}, [] { return Outcome::kOk; });
  CHECK(help.rc == 0);
  CHECK(help.err.empty());
  for (const char* needle : {"--learning-rate", kEnv, "Examples:", "Exit codes:", "Precedence: flag"})
    CHECK_MESSAGE(help.out.find(needle) != std::string::npos, needle);

  RateTool v;
  Ran version = run(v.tool, {"--version"}, [] { return Outcome::kOk; });
  CHECK(version.rc == 0);
  CHECK(version.out == hf::cli::version_text("test-tool"));
}

TEST_CASE("cli: a tool cannot declare a shared flag again") {
  for (const char* flag : {"--config", "-v,--verbose", "--quiet", "--log-format", "--version"}) {
    Tool tool("test-tool", "d", "  e");
    bool b = false;
    CHECK_THROWS_AS(tool.app().add_flag(flag, b, "again"), CLI::OptionAlreadyAdded);
  }
}

TEST_CASE("cli: version text names the tool, version, commit, compiler, libtorch and CUDA") {
  std::string text = hf::cli::version_text("hf-x");
  std::istringstream lines(text);
  std::string line;
  std::vector<std::string> got;
  while (std::getline(lines, line)) got.push_back(line);
  REQUIRE(got.size() == 5);
  CHECK(got[0].rfind("hf-x (hfkit) ", 0) == 0);
  CHECK(got[0].size() > std::string("hf-x (hfkit) ").size());
  const char* fields[] = {"commit: ", "compiler: ", "libtorch: ", "cuda: "};
  for (int i = 0; i < 4; ++i) {
    CHECK(got[i + 1].rfind(fields[i], 0) == 0);
    CHECK(got[i + 1].size() > std::string(fields[i]).size());  // a value, not an empty field
  }
}
