// Shared config/credentials file parsing and the static parts of the credential chain. The STS web
// identity, container and IMDS sources are exercised against moto in test/s3.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>

#include "core/error.h"
#include "core/file.h"
#include "storage/credentials.h"
#include "support/temp_dir.h"

using namespace hf::storage;

namespace {

// Sets variables for one test and restores the previous values.
class EnvGuard {
 public:
  explicit EnvGuard(std::map<std::string, std::string> vars) {
    for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                             "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                             "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                             "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED"}) {
      const char* v = std::getenv(name);
      saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~EnvGuard() {
    for (const auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

constexpr const char* kCredentials =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = AKIDDEFAULT\n"
    "aws_secret_access_key = secret/default+key ; inline comment\n"
    "\n"
    "[dev]\n"
    "AWS_ACCESS_KEY_ID=AKIDDEV\n"
    "aws_secret_access_key=dev;secret\n"
    "aws_session_token = tok==\n";

constexpr const char* kConfig =
    "[default]\n"
    "region = eu-west-1\n"
    "[profile dev]\n"
    "region = us-west-2\n"
    "s3 =\n"
    "  addressing_style = path\n"
    "  max_concurrent_requests = 20\n"
    "output = json\n"
    "[profile wi]\n"
    "role_arn = arn:aws:iam::123456789012:role/r\n"
    "web_identity_token_file = /var/run/token\n"
    "[profile chained]\n"
    "role_arn = arn:aws:iam::123456789012:role/r\n"
    "source_profile = default\n"
    "[sso-session corp]\n"
    "sso_region = us-east-1\n";

// The error a credential lookup throws (FAIL when it does not throw).
hf::Error lookup_error(const CredentialOptions& options = {}) {
  try {
    CredentialProvider(options).get();
  } catch (const hf::Error& e) {
    return e;
  }
  FAIL("no error");
  return hf::Error(hf::ErrorKind::kInternal, "");
}

}  // namespace

TEST_CASE("credentials: shared files parse like the SDKs") {
  IniFile c = parse_aws_ini(kCredentials, false);
  CHECK(c["default"]["aws_access_key_id"] == "AKIDDEFAULT");
  CHECK(c["default"]["aws_secret_access_key"] == "secret/default+key");
  CHECK(c["dev"]["aws_access_key_id"] == "AKIDDEV");  // keys are case-insensitive
  CHECK(c["dev"]["aws_secret_access_key"] == "dev;secret");  // ';' without a space before is data
  CHECK(c["dev"]["aws_session_token"] == "tok==");

  IniFile f = parse_aws_ini(kConfig, true);
  CHECK(f["default"]["region"] == "eu-west-1");
  CHECK(f["dev"]["region"] == "us-west-2");
  CHECK(f["dev"]["s3.addressing_style"] == "path");
  CHECK(f["dev"]["s3.max_concurrent_requests"] == "20");
  CHECK(f["dev"]["output"] == "json");
  CHECK(f["wi"]["web_identity_token_file"] == "/var/run/token");
  CHECK(f.count("corp") == 0);
  CHECK(f.count("sso-session corp") == 0);
}

TEST_CASE("credentials: profiles from files, credentials file first") {
  hf::test::TempDir dir;
  hf::write_file_atomic(dir.file("credentials"), kCredentials);
  hf::write_file_atomic(dir.file("config"), kConfig);
  EnvGuard env({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}, {"AWS_CONFIG_FILE", dir.file("config")}});
  ProfileSettings dev = load_profile("dev");
  CHECK(dev.found);
  CHECK(dev.access_key_id == "AKIDDEV");
  CHECK(dev.session_token == "tok==");
  CHECK(dev.region == "us-west-2");
  ProfileSettings wi = load_profile("wi");
  CHECK(wi.role_arn == "arn:aws:iam::123456789012:role/r");
  CHECK(wi.access_key_id.empty());
  CHECK_FALSE(load_profile("nope").found);
  CHECK(profile_name("") == "default");
  ::setenv("AWS_PROFILE", "dev", 1);
  CHECK(profile_name("") == "dev");
  CHECK(profile_name("x") == "x");
}

TEST_CASE("credentials: chain order and errors") {
  hf::test::TempDir dir;
  hf::write_file_atomic(dir.file("credentials"), kCredentials);
  hf::write_file_atomic(dir.file("config"), kConfig);
  std::map<std::string, std::string> files = {{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")},
                                              {"AWS_CONFIG_FILE", dir.file("config")},
                                              {"AWS_EC2_METADATA_DISABLED", "true"}};
  SUBCASE("environment wins over files") {
    auto vars = files;
    vars["AWS_ACCESS_KEY_ID"] = "AKIDENV";
    vars["AWS_SECRET_ACCESS_KEY"] = "envsecret";
    EnvGuard env(vars);
    CredentialProvider p({});
    CHECK(p.get().access_key_id == "AKIDENV");
    CHECK(p.source() == "environment");
  }
  SUBCASE("AWS_PROFILE selects a profile") {
    auto vars = files;
    vars["AWS_PROFILE"] = "dev";
    EnvGuard env(vars);
    CredentialProvider p({});
    auto c = p.get();
    CHECK(c.access_key_id == "AKIDDEV");
    CHECK(c.secret_access_key == "dev;secret");
    CHECK(c.session_token == "tok==");
  }
  SUBCASE("default profile") {
    EnvGuard env(files);
    CHECK(CredentialProvider({}).get().access_key_id == "AKIDDEFAULT");
  }
  SUBCASE("a named profile that does not exist is a config error") {
    auto vars = files;
    vars["AWS_PROFILE"] = "missing";
    EnvGuard env(vars);
    hf::Error e = lookup_error();
    CHECK(e.kind() == hf::ErrorKind::kConfig);
    CHECK(std::string(e.what()).find("missing") != std::string::npos);
  }
  SUBCASE("unsupported chained roles say so") {
    EnvGuard env(files);
    CredentialOptions o;
    o.profile = "chained";
    CHECK(lookup_error(o).kind() == hf::ErrorKind::kConfig);
  }
  SUBCASE("nothing anywhere is an auth error naming what was tried, not a secret") {
    EnvGuard env({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("none")}, {"AWS_CONFIG_FILE", dir.file("none")},
                  {"AWS_EC2_METADATA_DISABLED", "true"}});
    hf::Error e = lookup_error();
    CHECK(e.kind() == hf::ErrorKind::kNoPerm);
    CHECK(std::string(e.what()).find("instance metadata") != std::string::npos);
  }
  SUBCASE("container URI on a non-local host is refused") {
    EnvGuard env({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("none")}, {"AWS_CONFIG_FILE", dir.file("none")},
                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://evil.example.com/creds"}});
    CHECK(lookup_error().kind() == hf::ErrorKind::kConfig);
  }
}

TEST_CASE("credentials: ISO-8601 expirations") {
  using std::chrono::system_clock;
  CHECK(system_clock::to_time_t(parse_iso8601("2026-11-22T08:59:46Z")) == 1795337986);
  CHECK(system_clock::to_time_t(parse_iso8601("2026-11-22T08:59:46.029736Z")) == 1795337986);
  CHECK(system_clock::to_time_t(parse_iso8601("2026-11-22T10:59:46+02:00")) == 1795337986);
  CHECK_THROWS_AS(parse_iso8601("tomorrow"), hf::Error);
}
