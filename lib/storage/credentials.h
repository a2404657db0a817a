// The AWS credential chain in SDK order: environment, shared credentials/config files (with
// AWS_PROFILE), web identity (STS AssumeRoleWithWebIdentity, token file re-read on every refresh),
// ECS container credentials, EC2 instance metadata (IMDSv2). Temporary credentials are refreshed
// before they expire. Secrets and tokens never reach logs or error messages.
// Spec: https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html
// Internal to lib/storage.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "storage/http.h"
#include "storage/sigv4.h"

namespace hf::storage {

// Section -> key -> value of an AWS shared file. For the config file ("[profile name]" and
// "[default]") sections are stored under the bare profile name; keys are lower-cased; values
// trimmed; '#'/';' start comments; indented lines under "key =" are stored as "key.sub".
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
IniFile parse_aws_ini(std::string_view text, bool config_file);

struct ProfileSettings {
  bool found = false;
  std::string access_key_id, secret_access_key, session_token;
  std::string region;
  std::string role_arn, web_identity_token_file, role_session_name;
  std::string source_profile, credential_process;  // recognised only to report "unsupported"
};
// The profile's settings from AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) and
// AWS_CONFIG_FILE (~/.aws/config); the credentials file wins for keys. Missing files are fine.
ProfileSettings load_profile(const std::string& name);
// `explicit_name`, else AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default".
std::string profile_name(const std::string& explicit_name);

// "2026-11-22T08:59:46Z" or with fractional seconds / "+00:00". Throws Error(kDataErr).
std::chrono::system_clock::time_point parse_iso8601(std::string_view text);

struct TimedCredentials {
  sigv4::Credentials credentials;
  std::optional<std::chrono::system_clock::time_point> expiration;  // nullopt: long-term keys
};

struct CredentialOptions {
  std::string profile;  // "" = AWS_PROFILE / default
  std::string region;   // picks the regional STS endpoint
  HttpSettings http;
  std::chrono::seconds refresh_margin{300};  // refresh this long before expiry
};

class CredentialProvider {
 public:
  explicit CredentialProvider(CredentialOptions options);

  // Current credentials: resolves the chain on first use, refreshes temporary credentials within
  // refresh_margin of expiry (a failed refresh keeps the old ones until they expire, with a
  // warning). Thread-safe. Throws Error(kNoPerm) when no source has credentials (the message
  // names what was tried), Error(kConfig) for a named profile that does not exist.
  sigv4::Credentials get();
  // The next get() fetches anew (after the store answered ExpiredToken).
  void invalidate();
  // Where the credentials came from, e.g. "environment", "web identity"; "" before get().
  std::string source();

 private:
  enum class Source { kNone, kStatic, kWebIdentity, kContainer, kImds };
  void resolve();
  TimedCredentials fetch();
  TimedCredentials fetch_web_identity();
  TimedCredentials fetch_container();
  TimedCredentials fetch_imds();

  CredentialOptions options_;
  std::mutex mu_;
  Source kind_ = Source::kNone;
  std::string source_name_;
  TimedCredentials current_;
  bool stale_ = true;
  // Web identity parameters (from env or profile).
  std::string role_arn_, token_file_, session_name_;
};

}  // namespace hf::storage
