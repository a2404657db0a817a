// The sync engine and its manifest, against the local-directory backend (S3 runs in test/s3):
// unchanged files are neither re-read nor re-sent, changes are found, --delete and --dry-run.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "storage/manifest.h"
#include "storage/storage.h"
#include "support/temp_dir.h"

using namespace hf::storage;
namespace fs = std::filesystem;

namespace {

void write(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

void bump_mtime(const std::string& path) {
  struct timespec times[2] = {{0, UTIME_OMIT}, {0, 0}};
  struct stat st{};
  ::stat(path.c_str(), &st);
  times[1].tv_sec = st.st_mtim.tv_sec + 10;
  ::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

bool same_tree(const std::string& a, const std::string& b) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    ++n;
    std::string rel = fs::relative(e.path(), a).string();
    if (!fs::exists(b + "/" + rel) || hf::read_file(e.path().string()) != hf::read_file(b + "/" + rel)) return false;
  }
  std::size_t m = 0;
  for (const auto& e : fs::recursive_directory_iterator(b))
    if (e.is_regular_file()) ++m;
  return n == m;
}

}  // namespace

TEST_CASE("sync: push is incremental through the manifest") {
  hf::test::TempDir dir;
  std::string src = dir.file("src"), dst = dir.file("dst");
  write(src + "/a.txt", "alpha");
  write(src + "/sub/b.bin", std::string(5000, 'b'));
  write(src + "/skip.tmp", "t");
  Url url = parse_url("file://" + dst);
  Options o;
  o.jobs = 2;
  SyncOptions s;
  s.manifest_path = dir.file("manifest.json");
  s.filter.exclude = {"*.tmp"};

  SyncSummary first = push(src, url, o, s);
  CHECK(first.files_transferred == 2);
  CHECK(first.files_hashed == 2);
  CHECK_FALSE(fs::exists(dst + "/skip.tmp"));

  SyncSummary again = push(src, url, o, s);
  CHECK(again.files_transferred == 0);
  CHECK(again.files_hashed == 0);  // not re-read
  CHECK(again.files_unchanged == 2);

  bump_mtime(src + "/a.txt");  // touched, same bytes: re-read, not re-sent
  SyncSummary touched = push(src, url, o, s);
  CHECK(touched.files_hashed == 1);
  CHECK(touched.files_transferred == 0);

  write(src + "/sub/b.bin", std::string(4999, 'b') + "c");  // same size, new content
  bump_mtime(src + "/sub/b.bin");
  SyncSummary changed = push(src, url, o, s);
  CHECK(changed.files_transferred == 1);
  CHECK(hf::read_file(dst + "/sub/b.bin") == std::string(4999, 'b') + "c");

  write(dst + "/extra.txt", "x");
  SyncOptions dry = s;
  dry.delete_extra = true;
  dry.dry_run = true;
  SyncSummary plan = push(src, url, o, dry);
  REQUIRE(plan.actions.size() == 1);
  CHECK(plan.actions[0].kind == "delete");
  CHECK(fs::exists(dst + "/extra.txt"));
  SyncOptions del = s;
  del.delete_extra = true;
  CHECK(push(src, url, o, del).files_deleted == 1);
  CHECK_FALSE(fs::exists(dst + "/extra.txt"));

  Manifest m = Manifest::from_json(hf::read_file(s.manifest_path));
  REQUIRE(m.find("a.txt") != nullptr);
  CHECK(m.find("a.txt")->sha256 == hf::sha256_hex("alpha"));
  CHECK(m.find("a.txt")->size == 5);
  CHECK(m.find("skip.tmp") == nullptr);
}

TEST_CASE("sync: pull mirrors, verifies, and is incremental") {
  hf::test::TempDir dir;
  std::string src = dir.file("remote"), dst = dir.file("local");
  write(src + "/model.safetensors", std::string(100000, 'm'));
  write(src + "/tok/vocab.txt", "[PAD]\n[UNK]\n");
  Url url = parse_url(src);
  Options o;
  SyncOptions s;
  s.manifest_path = dir.file("m.json");
  SyncSummary first = pull(url, dst, o, s);
  CHECK(first.files_transferred == 2);
  CHECK(same_tree(src, dst));
  SyncSummary again = pull(url, dst, o, s);
  CHECK(again.files_transferred == 0);
  CHECK(again.files_hashed == 0);
  for (const auto& e : fs::recursive_directory_iterator(dst))
    CHECK(e.path().filename().string().find(".hfsync-") == std::string::npos);

  write(dst + "/stale.txt", "s");
  SyncOptions del = s;
  del.delete_extra = true;
  CHECK(pull(url, dst, o, del).files_deleted == 1);
  CHECK(same_tree(src, dst));
}

TEST_CASE("sync: pull refuses to write through a symlink and writes nothing") {
  hf::test::TempDir dir;
  std::string src = dir.file("remote"), dst = dir.file("local");
  write(src + "/a.txt", "a");
  write(src + "/escape/x.txt", "x");
  fs::create_directories(dst);
  fs::create_directories(dir.file("outside"));
  fs::create_directory_symlink(dir.file("outside"), dst + "/escape");
  SyncOptions s;
  s.manifest_path = "none";
  try {
    pull(parse_url(src), dst, Options{}, s);
    FAIL("pull followed a symlink");
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kDataErr);
  }
  CHECK(fs::is_empty(dir.file("outside")));
  CHECK_FALSE(fs::exists(dst + "/a.txt"));  // checks run before any write
}

TEST_CASE("sync: manifest file handling") {
  hf::test::TempDir dir;
  ::setenv("XDG_CACHE_HOME", dir.file("cache").c_str(), 1);
  std::string p = Manifest::default_path("/data/run", "s3://b/run");
  CHECK(p.rfind(dir.file("cache") + "/hfkit/sync/", 0) == 0);
  CHECK(p != Manifest::default_path("/data/run", "s3://b/other"));
  hf::write_file_atomic(dir.file("bad.json"), "{not json");
  Manifest m = Manifest::load(dir.file("bad.json"), "/data/run", "s3://b/run");  // a cache: corrupt = empty
  CHECK(m.entries().empty());
  m.set("x", {1, 2, "s", "e"});
  m.save();
  Manifest back = Manifest::load(dir.file("bad.json"), "/data/run", "s3://b/run");
  REQUIRE(back.find("x") != nullptr);
  CHECK(back.find("x")->etag == "e");
  CHECK(Manifest::load(dir.file("bad.json"), "/data/run", "s3://b/elsewhere").entries().empty());
  CHECK_THROWS_AS(Manifest::from_json("{\"version\": 99, \"files\": {}}"), hf::Error);
}
