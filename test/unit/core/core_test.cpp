// core: error formatting, atomic files, sha256, YAML config, thread pool.
#include <doctest/doctest.h>

#include <atomic>
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
