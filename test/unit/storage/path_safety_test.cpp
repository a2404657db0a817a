// Pull safety: which keys may become local files, and writes that never leave the root.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/file.h"
#include "storage/local_root.h"
#include "storage/storage.h"
#include "support/temp_dir.h"

using namespace hf::storage;
namespace fs = std::filesystem;

TEST_CASE("path safety: keys") {
  for (const char* good : {"a", "a/b.txt", "a..b", "..a", ".hidden", "a/.b/c", "dir/...", "sp ace/x", "a\\..\\b"}) {
    CAPTURE(good);
    CHECK_FALSE(unsafe_key_reason(good).has_value());
  }
  const std::string long_component(256, 'x');
  for (std::string bad : {std::string(""), std::string("/abs"), std::string("../x"), std::string("a/../../x"),
                          std::string("a/./b"), std::string("."), std::string("x/.."), std::string("a//b"),
                          std::string("a/"), std::string("a\x01" "b"), std::string("a\x7f"), std::string("a\nb"),
                          std::string("nul\0x", 5), long_component}) {
    CAPTURE(bad);
    CHECK(unsafe_key_reason(bad).has_value());
  }
}

TEST_CASE("path safety: writes never follow symlinks out of the root") {
  hf::test::TempDir dir;
  fs::create_directories(dir.file("root/real"));
  fs::create_directories(dir.file("outside"));
  fs::create_directory_symlink(dir.file("outside"), dir.file("root/link"));
  fs::create_symlink(dir.file("outside/f"), dir.file("root/filelink"));
  LocalRoot root(dir.file("root"), false);

  for (const char* rel : {"link/x", "link", "filelink", "link/deeper/x"}) {
    CAPTURE(rel);
    try {
      root.inspect(rel);
      FAIL("inspect accepted a symlink");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kDataErr);
    }
  }
  CHECK_THROWS_AS(root.create_temp("link/x"), hf::Error);
  CHECK_THROWS_AS(root.inspect("real"), hf::Error);  // a directory where a file should go
  CHECK(fs::is_empty(dir.file("outside")));

  CHECK_FALSE(root.inspect("new/dir/file.txt").exists);
  {
    LocalRoot::Temp t = root.create_temp("new/dir/file.txt");
    CHECK(::write(t.fd(), "abc", 3) == 3);
    CHECK_FALSE(fs::exists(dir.file("root/new/dir/file.txt")));  // invisible until committed
    t.commit();
  }
  CHECK(hf::read_file(dir.file("root/new/dir/file.txt")) == "abc");
  LocalStat st = root.inspect("new/dir/file.txt");
  CHECK(st.exists);
  CHECK(st.size == 3);
  {
    LocalRoot::Temp t = root.create_temp("new/dir/abandoned.txt");
    CHECK(::write(t.fd(), "x", 1) == 1);
  }  // not committed: removed
  for (const auto& e : fs::directory_iterator(dir.file("root/new/dir")))
    CHECK(e.path().filename() == "file.txt");
  root.remove_file("filelink");  // a symlink is not a file we own: left alone
  CHECK(fs::is_symlink(dir.file("root/filelink")));
}

TEST_CASE("path safety: temp names") {
  CHECK(is_temp_name(".model.safetensors.hfsync-0123abcd.tmp"));
  CHECK_FALSE(is_temp_name("model.tmp"));
  CHECK_FALSE(is_temp_name(".hfsync-.tmp"));
}
