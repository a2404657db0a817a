// JsonlWriter: atomic files, stdout, the broken-pipe rule; the JSON string escaping it shares with
// the safetensors writer, against nlohmann::json's own dump.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "core/file.h"
#include "io/io.h"
#include "support/temp_dir.h"
#include "unit/io/io_test_util.h"

TEST_CASE("jsonl writer: file appears only on close, with every line") {
  hf::test::TempDir dir;
  const std::string path = dir.file("out.jsonl");
  {
    hf::io::JsonlWriter w(path);
    w.write(nlohmann::ordered_json{{"z", 1}, {"a", "x"}});
    w.write(nlohmann::json{{"a", {1, 2}}});
    w.write_line("{\"raw\":true}");
    std::string& b = w.buffer();
    b += "{\"n\":";
    hf::io::append_int(b, -9223372036854775807LL - 1);
    b += "}\n";
    w.maybe_flush();
    // Large enough to pass the 1 MiB buffer several times.
    for (int i = 0; i < 100000; ++i) w.write(nlohmann::json{{"i", i}, {"pad", std::string(30, 'p')}});
    CHECK_FALSE(std::filesystem::exists(path));
    w.close();
    w.close();  // idempotent
  }
  const std::string content = hf::read_file(path);
  CHECK(content.starts_with("{\"z\":1,\"a\":\"x\"}\n{\"a\":[1,2]}\n{\"raw\":true}\n{\"n\":-9223372036854775808}\n"));
  CHECK(std::count(content.begin(), content.end(), '\n') == 100004);

  const std::string dropped = dir.file("dropped.jsonl");
  {
    hf::io::JsonlWriter w(dropped);
    w.write(nlohmann::json{{"a", 1}});
    w.flush();
  }
  CHECK_FALSE(std::filesystem::exists(dropped));
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("jsonl writer: invalid UTF-8 in a value is an internal error") {
  hf::test::TempDir dir;
  hf::io::JsonlWriter w(dir.file("x.jsonl"));
  hf::test::expect_error([&] { w.write(nlohmann::json{{"a", "\xFF"}}); }, hf::ErrorKind::kInternal, {"JSON output"});
}

TEST_CASE("jsonl writer: stdout, and a closed pipe is hf::BrokenPipe") {
  auto old_handler = std::signal(SIGPIPE, SIG_IGN);
  int saved = ::dup(1);
  REQUIRE(saved >= 0);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::dup2(fds[1], 1);
  ::close(fds[1]);
  std::string got(64, '\0');
  {
    hf::io::JsonlWriter w("-");
    w.write(nlohmann::json{{"k", "v"}});
    w.close();
  }
  got.resize(static_cast<std::size_t>(::read(fds[0], got.data(), got.size())));
  ::close(fds[0]);  // the reader goes away
  bool broken = false;
  try {
    hf::io::JsonlWriter w("-");
    w.write_line("{}");
    w.flush();
  } catch (const hf::BrokenPipe& e) {
    broken = true;
    CHECK(e.kind() == hf::ErrorKind::kIo);
    CHECK(std::string(e.what()) == "stdout: broken pipe");
  }
  ::dup2(saved, 1);
  ::close(saved);
  std::signal(SIGPIPE, old_handler);
  CHECK(got == "{\"k\":\"v\"}\n");
  CHECK(broken);
}

TEST_CASE("append_json_string escapes exactly as nlohmann::json::dump") {
  std::vector<std::string> cases = {"", "plain", "caf\xC3\xA9 \xF0\x9F\x98\x80", "q\"b\\s/", "\x7F"};
  std::string all_ascii;
  for (int c = 0; c < 128; ++c) all_ascii += static_cast<char>(c);
  cases.push_back(all_ascii);
  for (const auto& s : cases) {
    CAPTURE(s);
    std::string got;
    hf::io::append_json_string(got, s);
    CHECK(got == nlohmann::json(s).dump());
  }
  std::string n;
  for (std::int64_t v : {0LL, 7LL, -1LL, 9223372036854775807LL}) {
    n.clear();
    hf::io::append_int(n, v);
    CHECK(n == std::to_string(v));
  }
}
