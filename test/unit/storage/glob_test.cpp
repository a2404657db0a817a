// --include/--exclude globs: the semantics documented at glob_match in storage.h.
#include <doctest/doctest.h>

#include "storage/storage.h"

using hf::storage::glob_match;
using hf::storage::PathFilter;

TEST_CASE("glob: matches") {
  struct Case {
    const char* pattern;
    const char* path;
    bool match;
  };
  const Case cases[] = {
      // no '/': any component
      {"*.tmp", "x.tmp", true},
      {"*.tmp", "a/b/x.tmp", true},
      {"*.tmp", "a/x.tmp/y", true},  // a directory named *.tmp: everything below it
      {"*.tmp", "x.tmpl", false},
      {"logs", "logs/a.txt", true},
      {"logs", "a/logs", true},
      {"logs", "logsx/a", false},
      {"checkpoint-*", "checkpoint-5/model.safetensors", true},
      {"checkpoint-*", "run/checkpoint-5", true},
      {"?.txt", "a.txt", true},
      {"?.txt", "ab.txt", false},
      {"[ab].txt", "b.txt", true},
      {"[!ab].txt", "b.txt", false},
      {"[!ab].txt", "c.txt", true},
      {"[a-c]x", "bx", true},
      {"[a-c]x", "dx", false},
      {"\\*.txt", "*.txt", true},
      {"\\*.txt", "a.txt", false},
      // with '/': whole path (or a leading directory)
      {"a/*.txt", "a/b.txt", true},
      {"a/*.txt", "a/b/c.txt", false},
      {"a/*.txt", "x/a/b.txt", false},
      {"a/**/c.txt", "a/c.txt", true},
      {"a/**/c.txt", "a/b/d/c.txt", true},
      {"**/c.txt", "c.txt", true},
      {"**/c.txt", "x/y/c.txt", true},
      {"a/**", "a/b/c", true},
      {"a/b", "a/b/c/d", true},
      {"a/b", "a/bc", false},
      {"/a/b", "a/b", true},
      {"a/*", "a/b/c", true},
      {"", "a", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pattern);
    CAPTURE(c.path);
    CHECK(glob_match(c.pattern, c.path) == c.match);
  }
}

TEST_CASE("glob: path filter combines include and exclude") {
  PathFilter none;
  CHECK(none.selected("anything"));
  PathFilter f{{"*.safetensors", "*.json"}, {"optimizer*"}};
  CHECK(f.selected("model.safetensors"));
  CHECK(f.selected("ckpt/config.json"));
  CHECK_FALSE(f.selected("optimizer.safetensors"));
  CHECK_FALSE(f.selected("vocab.txt"));
  PathFilter ex{{}, {"checkpoint-*"}};
  CHECK(ex.selected("model.safetensors"));
  CHECK_FALSE(ex.selected("checkpoint-10/model.safetensors"));
}
