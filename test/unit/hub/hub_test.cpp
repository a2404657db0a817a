// lib/hub's pure parts: reference parsing (good forms, then names that must never become paths),
// cache folder names, settings from the environment, the cache lookup over a hand-made layout,
// and the parsing of the Hub's answers that decide file names.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "hub/hub.h"
#include "hub/internal.h"
#include "support/temp_dir.h"

using namespace hf::hub;
namespace fs = std::filesystem;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

}  // namespace

TEST_CASE("hub: repo references") {
  struct Case {
    const char* text;
    const char* repo_id;
    const char* revision;
  };
  for (const Case& c : {Case{"org/name", "org/name", "main"}, Case{"bert-base-uncased", "bert-base-uncased", "main"},
                        Case{"sentence-transformers/all-MiniLM-L6-v2@v1.0", "sentence-transformers/all-MiniLM-L6-v2", "v1.0"},
                        Case{"o_1/n.a-me@refs/pr/12", "o_1/n.a-me", "refs/pr/12"},
                        Case{"org/name@0123456789abcdef0123456789abcdef01234567", "org/name",
                             "0123456789abcdef0123456789abcdef01234567"}}) {
    CAPTURE(c.text);
    CHECK(looks_like_repo_ref(c.text));
    const RepoRef ref = parse_repo_ref(c.text);
    CHECK(ref.repo_id == c.repo_id);
    CHECK(ref.revision == c.revision);
  }
  const std::string long_part(97, 'a');
  for (const std::string& bad : std::vector<std::string>{"", "../x", "..", ".", "/abs/path", "/x", "a/b/c", "org/../x", "org/./x", "org/", "/name",
                                "org--x/y", "org/x--y", ".hidden/x", "org/.x", "-org/x", "org/x-", "org/x.", "a b/c",
                                "org/name@", "org/name@../x", "org/name@a/../b", "org/name@.x", "org/name@a//b",
                                "org/name@/a", "s3://bucket/x", "run/", "org\\x/y", "org/na\nme", long_part,
                                "org/" + long_part}) {
    CAPTURE(bad);
    CHECK_FALSE(looks_like_repo_ref(bad));
    try {
      (void)parse_repo_ref(bad);
      FAIL("accepted");
    } catch (const hf::Error& e) {
      CHECK(e.kind() == hf::ErrorKind::kUsage);
    }
  }
}

TEST_CASE("hub: cache folder names and commit hashes") {
  CHECK(repo_folder_name("org/name") == "models--org--name");
  CHECK(repo_folder_name("gpt2") == "models--gpt2");
  CHECK(is_commit_hash(kCommit));
  CHECK_FALSE(is_commit_hash("main"));
  CHECK_FALSE(is_commit_hash(kCommit.substr(1)));
  CHECK_FALSE(is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
}

TEST_CASE("hub: settings follow huggingface_hub's variables") {
  Settings s = settings_from_env(env_of({{"HOME", "/home/u"}}));
  CHECK(s.cache_dir == "/home/u/.cache/huggingface/hub");
  CHECK(s.endpoint == "https://huggingface.co");
  CHECK_FALSE(s.offline);
  CHECK(s.token.empty());
  CHECK(settings_from_env(env_of({{"HOME", "/h"}, {"XDG_CACHE_HOME", "/xdg"}})).cache_dir == "/xdg/huggingface/hub");
  CHECK(settings_from_env(env_of({{"HOME", "/h"}, {"XDG_CACHE_HOME", "/xdg"}, {"HF_HOME", "~/hf"}})).cache_dir ==
        "/h/hf/hub");
  CHECK(settings_from_env(env_of({{"HF_HOME", "/hf"}, {"HF_HUB_CACHE", "/c"}})).cache_dir == "/c");
  CHECK(settings_from_env(env_of({{"HF_HOME", "/hf"}, {"HUGGINGFACE_HUB_CACHE", "/old"}})).cache_dir == "/old");
  CHECK(settings_from_env(env_of({{"HF_ENDPOINT", "http://mirror:8080//"}})).endpoint == "http://mirror:8080");
  for (const char* yes : {"1", "true", "ON", "yes"}) CHECK(settings_from_env(env_of({{"HF_HUB_OFFLINE", yes}})).offline);
  for (const char* no : {"0", "false", "", "2"}) CHECK_FALSE(settings_from_env(env_of({{"HF_HUB_OFFLINE", no}})).offline);
  CHECK(settings_from_env(env_of({{"TRANSFORMERS_OFFLINE", "1"}})).offline);

  hf::test::TempDir home;
  hf::write_file_atomic(home.file("token"), "hf_from_file\n");
  CHECK(settings_from_env(env_of({{"HF_HOME", home.path()}})).token == "hf_from_file");
  CHECK(settings_from_env(env_of({{"HF_HOME", home.path()}, {"HF_TOKEN", "hf_env"}})).token == "hf_env");
  CHECK(settings_from_env(env_of({{"HF_HOME", home.path()}, {"HUGGING_FACE_HUB_TOKEN", "hf_old"}})).token == "hf_old");
  hf::write_file_atomic(home.file("other"), " hf_other ");
  CHECK(settings_from_env(env_of({{"HF_HOME", "/none"}, {"HF_TOKEN_PATH", home.file("other")}})).token == "hf_other");
}

TEST_CASE("hub: the cache lookup follows refs and snapshots") {
  hf::test::TempDir cache;
  Settings s;
  s.cache_dir = cache.path();
  const std::string st = cache.file("models--org--name");
  const std::string snap = st + "/snapshots/" + kCommit;
  hf::make_dirs(snap);
  hf::make_dirs(st + "/blobs");
  hf::make_dirs(st + "/refs/refs/pr");
  hf::write_file_atomic(st + "/refs/main", kCommit);  // huggingface_hub writes no newline
  hf::write_file_atomic(st + "/refs/refs/pr/1", kCommit + "\n");
  hf::write_file_atomic(st + "/refs/broken", "not a commit");
  hf::write_file_atomic(st + "/blobs/e1", "{}");
  REQUIRE(::symlink("../../blobs/e1", (snap + "/config.json").c_str()) == 0);

  CHECK(find_cached(parse_repo_ref("org/name"), s, false) == snap);
  CHECK(find_cached(parse_repo_ref("org/name@refs/pr/1"), s, false) == snap);
  CHECK(find_cached(parse_repo_ref("org/name@" + kCommit), s, false) == snap);
  CHECK_FALSE(find_cached(parse_repo_ref("org/name@v2"), s, false));
  CHECK_FALSE(find_cached(parse_repo_ref("org/name@" + std::string(40, 'f')), s, false));
  CHECK_FALSE(find_cached(parse_repo_ref("other/name"), s, false));
  CHECK_THROWS_AS(find_cached(parse_repo_ref("org/name@broken"), s, false), hf::Error);

  // complete: config.json plus the weights, a single file or an index with every shard
  CHECK_FALSE(find_cached(parse_repo_ref("org/name"), s, true));
  hf::write_file_atomic(snap + "/" + kIndexFile, R"({"weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors"}})");
  hf::write_file_atomic(snap + "/m-1.safetensors", "x");
  CHECK_FALSE(find_cached(parse_repo_ref("org/name"), s, true));
  hf::write_file_atomic(snap + "/m-2.safetensors", "x");
  CHECK(find_cached(parse_repo_ref("org/name"), s, true) == snap);
  // a dangling link (blob removed) is not a file
  fs::remove(st + "/blobs/e1");
  CHECK_FALSE(find_cached(parse_repo_ref("org/name"), s, true));
}

TEST_CASE("hub: answers of the Hub that become file names") {
  CHECK(normalize_etag("\"abc\"") == "abc");
  CHECK(normalize_etag("W/\"abc\"") == "abc");
  CHECK(normalize_etag("abc") == "abc");
  CHECK(is_safe_etag(std::string(64, 'a')));
  for (const std::string& bad : std::vector<std::string>{"", "../x", "a/b", ".x", "a.b", std::string(129, 'a'), "a b"}) {
    CAPTURE(bad);
    CHECK_FALSE(is_safe_etag(bad));
  }
  CHECK(is_wanted_file("config.json"));
  CHECK(is_wanted_file("model.safetensors.index.json"));
  CHECK_FALSE(is_wanted_file("pytorch_model.bin"));
  CHECK_FALSE(is_wanted_file("sub/config.json"));

  const RepoInfo info = parse_repo_info(
      R"({"id": "o/n", "sha": ")" + kCommit + R"(", "siblings": [{"rfilename": "config.json"}, {"x": 1}]})", "api");
  CHECK(info.sha == kCommit);
  CHECK(info.files == std::vector<std::string>{"config.json"});
  for (const std::string& bad : std::vector<std::string>{"", "[]", R"({"sha": "main", "siblings": []})", R"({"sha": ")" + kCommit + R"("})"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_repo_info(bad, "api"), hf::Error);
  }

  CHECK(index_shards(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s1.safetensors"}})", "i") ==
        std::vector<std::string>{"s1.safetensors", "s2.safetensors"});
  for (const char* bad : {R"({"weight_map": {"a": "../x"}})", R"({"weight_map": {"a": "d/x"}})",
                          R"({"weight_map": {"a": 1}})", R"({"weight_map": []})", "nope"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(index_shards(bad, "i"), hf::Error);
  }
}
