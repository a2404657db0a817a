// core: error formatting, atomic files, sha256, YAML config, thread pool.
#include <doctest/doctest.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/error.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;

TEST_CASE("error: where formatting") {
  struct Case { hf::Where where; const char* want; };
  const Case cases[] = {
      {{"a.jsonl", 17, "label"}, "a.jsonl:17: field \"label\": boom"},
      {{"a.jsonl", 0, ""}, "a.jsonl: boom"},
      {{"", 0, "x"}, "field \"x\": boom"},
      {{"", 0, ""}, "boom"},
  };
  for (const auto& c : cases) {
    hf::Error e(hf::ErrorKind::kDataErr, c.where, "boom");
    CHECK(std::string(e.what()) == c.want);
    CHECK(e.kind() == hf::ErrorKind::kDataErr);
  }
}

TEST_CASE("atomic file: nothing appears without commit, old content survives") {
  hf::test::TempDir dir;
  std::string path = dir.file("out.txt");
  hf::write_file_atomic(path, "old");
  {
    hf::AtomicFile f(path);
    f.write("new content");
    // no commit: simulates a failure mid-write
  }
  CHECK(hf::read_file(path) == "old");
  size_t entries = 0;
  for (auto& e : fs::directory_iterator(dir.path())) { (void)e; ++entries; }
  CHECK(entries == 1);  // the temp file was removed
  {
    hf::AtomicFile f(path);
    std::string big(3 << 20, 'x');  // larger than the write buffer
    f.write(big);
    f.commit();
  }
  CHECK(hf::read_file(path).size() == (3u << 20));
}

TEST_CASE("atomic file: errors") {
  CHECK_THROWS_AS(hf::AtomicFile("/nonexistent-dir/x"), hf::Error);
  try {
    hf::read_file("/nonexistent-file");
    FAIL("expected an error");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kNoInput);
  }
}

TEST_CASE("sha256: known vectors (FIPS 180-2)") {
  CHECK(hf::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hf::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("config: YAML values, sequences, and errors with line numbers") {
  hf::test::TempDir dir;
  std::string path = dir.file("job.yaml");
  hf::write_file_atomic(path, "# comment\nlearning_rate: 3e-5\nlabels: [a, b]\nempty:\n");
  auto cfg = hf::ConfigFile::load(path);
  REQUIRE(cfg.entries().count("learning_rate") == 1);
  CHECK(cfg.entries().at("learning_rate").values == std::vector<std::string>{"3e-5"});
  CHECK(cfg.entries().at("learning_rate").line == 2);
  CHECK(cfg.entries().at("labels").values == std::vector<std::string>{"a", "b"});
  CHECK(cfg.entries().count("empty") == 0);

  struct Bad { const char* text; const char* want; };
  const Bad bad[] = {
      {"a: 1\nb: [1, 2\n", "job.yaml:"},
      {"- 1\n- 2\n", "top level must be a mapping"},
      {"a:\n  b: 1\n", "job.yaml:1: field \"a\": nested mappings"},
      {"a: 1\na: 2\n", "job.yaml:2: field \"a\": duplicate key"},
  };
  for (const auto& b : bad) {
    hf::write_file_atomic(path, b.text);
    try {
      hf::ConfigFile::load(path);
      FAIL("expected an error for: " << b.text);
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kConfig);
      CHECK(std::string(e.what()).find(b.want) != std::string::npos);
    }
  }
}

TEST_CASE("thread pool: covers every index once, rethrows") {
  for (int threads : {1, 2, 4}) {
    hf::ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(1000);
    for (int round = 0; round < 3; ++round) {
      pool.parallel_for(hits.size(), 7, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) hits[i]++;
      });
    }
    for (auto& h : hits) CHECK(h.load() == 3);
    CHECK_THROWS_AS(pool.parallel_for(100, 1, [](size_t b, size_t e) {
      if (b <= 50 && 50 < e) throw hf::Error(hf::ErrorKind::kDataErr, "x");
    }), hf::Error);
  }
}

TEST_CASE("atomic file: a symlink is followed and its target replaced, the link kept") {
  hf::test::TempDir dir;
  const std::string target = dir.file("real.txt"), link = dir.file("link.txt");
  hf::write_file_atomic(target, "old");
  fs::create_symlink("real.txt", link);
  hf::write_file_atomic(link, "new");
  CHECK(fs::is_symlink(link));
  CHECK(hf::read_file(target) == "new");
  // A dangling link creates the file it names, as a shell's `>` does; a chain is followed too.
  fs::create_symlink("later.txt", dir.file("dangling"));
  fs::create_symlink("dangling", dir.file("chain"));
  hf::write_file_atomic(dir.file("chain"), "x");
  CHECK(fs::is_symlink(dir.file("dangling")));
  CHECK(hf::read_file(dir.file("later.txt")) == "x");
  // A loop is an error, not a hang.
  fs::create_symlink("loop2", dir.file("loop1"));
  fs::create_symlink("loop1", dir.file("loop2"));
  CHECK_THROWS_AS(hf::AtomicFile(dir.file("loop1")), hf::Error);
}

TEST_CASE("atomic file: FIFOs and devices are written through, never replaced") {
  hf::test::TempDir dir;
  const std::string fifo = dir.file("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::string got;
  std::thread reader([&] { got = hf::read_file(fifo); });
  {
    hf::AtomicFile f(fifo);  // blocks until the reader opens its end
    CHECK(f.writes_through());
    f.write(std::string(3 << 20, 'y'));  // more than a pipe and the write buffer hold
    f.commit();
  }
  reader.join();
  CHECK(got.size() == (3u << 20));
  struct stat st {};
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  hf::write_file_atomic("/dev/null", "discarded");
  REQUIRE(::lstat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  size_t entries = 0;
  for (auto& e : fs::directory_iterator(dir.path())) { (void)e; ++entries; }
  CHECK(entries == 1);  // no temp file beside the FIFO
  CHECK_THROWS_AS(hf::AtomicFile(dir.path()), hf::Error);  // a directory is refused
}

TEST_CASE("atomic dir: swapped in whole, old kept until commit, foreign directories refused") {
  hf::test::TempDir dir;
  const std::string out = dir.file("ds");
  {
    hf::AtomicDir d(out, "manifest");
    hf::write_file_atomic(d.temp_path() + "/manifest", "1");
    hf::write_file_atomic(d.temp_path() + "/a", "1");
    CHECK_FALSE(fs::exists(out));
    d.commit();
  }
  CHECK(hf::read_file(out + "/a") == "1");
  {
    hf::AtomicDir d(out + "/", "manifest");  // a trailing slash names the same directory
    hf::write_file_atomic(d.temp_path() + "/manifest", "2");
    // no commit: a failure half-way
  }
  CHECK(hf::read_file(out + "/manifest") == "1");
  {
    hf::AtomicDir d(out, "manifest");
    hf::write_file_atomic(d.temp_path() + "/manifest", "3");
    d.commit();
  }
  CHECK(hf::read_file(out + "/manifest") == "3");
  CHECK_FALSE(fs::exists(out + "/a"));  // the old directory went as a whole
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"ds"});  // no temp or old directory left behind
  // A directory that is not ours (no marker) is never replaced.
  fs::create_directory(dir.file("home"));
  hf::write_file_atomic(dir.file("home/precious"), "p");
  try {
    hf::AtomicDir d(dir.file("home"), "manifest");
    FAIL("expected an error");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kCantCreate);
    CHECK(std::string(e.what()).find("manifest") != std::string::npos);
  }
  CHECK(hf::read_file(dir.file("home/precious")) == "p");
}

TEST_CASE("safe names: identifiers only") {
  for (const char* good : {"train", "validation", "test-2", "a.b", "A_9", "x"}) CHECK(hf::is_safe_name(good));
  for (const char* bad : {"", ".", "..", "../x", "a/b", ".hidden", "a b", "é", "a\nb", "/abs"}) {
    CAPTURE(bad);
    CHECK_FALSE(hf::is_safe_name(bad));
  }
  CHECK(hf::is_safe_name(std::string(hf::kMaxNameLength, 'a')));
  CHECK_FALSE(hf::is_safe_name(std::string(hf::kMaxNameLength + 1, 'a')));
}

TEST_CASE("thread pool: a huge count is capped at a multiple of the cores") {
  hf::ThreadPool pool(100000);
  CHECK(pool.size() == hf::max_thread_count());
  CHECK(hf::max_thread_count() == hf::kMaxThreadsPerCore * hf::default_thread_count());
}

TEST_CASE("thread pool: --threads 0 counts the CPUs this process may run on, not every core") {
  // In a child pinned to one CPU (as `taskset -c 0`, a Slurm step or a cpuset would): one thread.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(::sched_getcpu() >= 0 ? ::sched_getcpu() : 0, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0) ::_exit(3);
    hf::ThreadPool pool(0);
    ::_exit(hf::default_thread_count() == 1 && pool.size() == 1 ? 0 : 4);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  cpu_set_t mine;
  REQUIRE(::sched_getaffinity(0, sizeof mine, &mine) == 0);
  CHECK(hf::default_thread_count() == CPU_COUNT(&mine));
}

TEST_CASE("thread pool: a refused thread is a clean kUnavailable error, not a hang") {
  // In a child: RLIMIT_NPROC counts the user's processes and threads, so a limit of 1 refuses every
  // new thread. Root ignores the limit, so the child first becomes nobody.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(20);  // a hang fails the test instead of blocking it
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    struct rlimit lim {1, 1};
    if (::setrlimit(RLIMIT_NPROC, &lim) != 0) ::_exit(4);
    try {
      hf::ThreadPool pool(4);
      ::_exit(5);  // the threads started: the limit did not bite
    } catch (const hf::Error& e) {
      const bool named = std::string(e.what()).find("cannot start thread") != std::string::npos;
      ::_exit(e.kind() == hf::ErrorKind::kUnavailable && named ? 0 : 6);
    } catch (...) {
      ::_exit(7);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
