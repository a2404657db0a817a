// AWS credential chain (see credentials.h).
#include "storage/credentials.h"

#include <nlohmann/json.hpp>

#include <ctime>

#include "core/backoff.h"
#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "storage/sigv4.h"
#include "storage/storage.h"
#include "storage/xml.h"

namespace hf::storage {
namespace {

constexpr const char* kStsVersion = "2011-06-15";
constexpr const char* kEcsHost = "http://169.254.170.2";
constexpr const char* kImdsEndpoint = "http://169.254.169.254";
constexpr int kImdsTokenTtlS = 21600;
constexpr double kImdsTimeoutS = 1.0;  // the SDK default: IMDS answers fast or not at all
constexpr int kFetchAttempts = 3;

// These lookups treat unset and empty alike.
std::string env(const char* name) { return hf::env(name).value_or(""); }

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return std::string(s);
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string home_file(const char* env_name, const char* rel) {
  std::string p = env(env_name);
  if (!p.empty()) {
    if (p.rfind("~/", 0) == 0) p = env("HOME") + p.substr(1);
    return p;
  }
  return env("HOME") + "/" + rel;
}

std::optional<std::string> try_read(const std::string& path) {
  try {
    return read_file(path);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kNoInput) return std::nullopt;
    throw;
  }
}

// Form/query value encoding for the STS request body.
std::string form_encode(std::string_view s) { return sigv4::uri_encode(s, false); }

std::string masked_key(const std::string& id) {
  return id.size() > 4 ? "****" + id.substr(id.size() - 4) : "****";
}

// "ExpiredToken"-style failures of a credential endpoint decide retry vs give up.
bool transient_status(long status) { return status == 0 || status == 429 || status >= 500; }

TimedCredentials from_json(const std::string& body, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const std::exception&) {
    throw Error(ErrorKind::kNoPerm, what + ": credentials response is not JSON");
  }
  TimedCredentials out;
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
  out.credentials.access_key_id = str("AccessKeyId");
  out.credentials.secret_access_key = str("SecretAccessKey");
  out.credentials.session_token = str("Token");
  if (out.credentials.access_key_id.empty() || out.credentials.secret_access_key.empty())
    throw Error(ErrorKind::kNoPerm, what + ": response has no AccessKeyId/SecretAccessKey");
  if (!str("Expiration").empty()) out.expiration = parse_iso8601(str("Expiration"));
  return out;
}

// Credential endpoints answer fast or not at all: a short fixed schedule (0.2 s, 0.4 s, ...).
void backoff(int attempt) { sleep_unless(Backoff{0.2, 5.0, false}.delay_s(attempt)); }

}  // namespace

IniFile parse_aws_ini(std::string_view text, bool config_file) {
  IniFile out;
  std::string section;
  bool in_section = false;
  std::string parent;  // "key" of an open "key =" sub-section
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    bool indented = !raw.empty() && (raw.front() == ' ' || raw.front() == '\t');
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      std::size_t close = line.find(']');
      std::string name = trim(line.substr(1, close == std::string::npos ? std::string::npos : close - 1));
      parent.clear();
      in_section = true;
      if (config_file) {
        if (name.rfind("profile ", 0) == 0 || name.rfind("profile\t", 0) == 0) {
          name = trim(name.substr(8));
        } else if (name != "default") {
          in_section = false;  // [sso-session x], [services x]: not profiles
          continue;
        }
      }
      section = name;
      out[section];
      continue;
    }
    if (!in_section) continue;
    std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = lower(trim(line.substr(0, eq)));
    std::string value = trim(line.substr(eq + 1));
    // Inline comments need whitespace before them, as in the SDKs.
    for (std::size_t i = 1; i < value.size(); ++i) {
      if ((value[i] == '#' || value[i] == ';') && (value[i - 1] == ' ' || value[i - 1] == '\t')) {
        value = trim(value.substr(0, i));
        break;
      }
    }
    if (indented && !parent.empty()) {
      out[section][parent + "." + key] = value;
      continue;
    }
    parent = value.empty() ? key : std::string();
    if (!value.empty() || out[section].count(key) == 0) out[section][key] = value;
  }
  return out;
}

std::string profile_name(const std::string& explicit_name) {
  if (!explicit_name.empty()) return explicit_name;
  std::string p = env("AWS_PROFILE");
  if (p.empty()) p = env("AWS_DEFAULT_PROFILE");
  return p.empty() ? "default" : p;
}

ProfileSettings load_profile(const std::string& name) {
  ProfileSettings out;
  auto apply = [&](const std::map<std::string, std::string>& s, bool keys) {
    out.found = true;
    auto get = [&](const char* k) {
      auto it = s.find(k);
      return it == s.end() ? std::string() : it->second;
    };
    if (keys && out.access_key_id.empty() && !get("aws_access_key_id").empty()) {
      out.access_key_id = get("aws_access_key_id");
      out.secret_access_key = get("aws_secret_access_key");
      out.session_token = get("aws_session_token");
    }
    if (out.region.empty()) out.region = get("region");
    if (out.role_arn.empty()) out.role_arn = get("role_arn");
    if (out.web_identity_token_file.empty()) out.web_identity_token_file = get("web_identity_token_file");
    if (out.role_session_name.empty()) out.role_session_name = get("role_session_name");
    if (out.source_profile.empty()) out.source_profile = get("source_profile");
    if (out.credential_process.empty()) out.credential_process = get("credential_process");
  };
  if (auto text = try_read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"))) {
    IniFile f = parse_aws_ini(*text, false);
    if (auto it = f.find(name); it != f.end()) apply(it->second, true);
  }
  if (auto text = try_read(home_file("AWS_CONFIG_FILE", ".aws/config"))) {
    IniFile f = parse_aws_ini(*text, true);
    if (auto it = f.find(name); it != f.end()) apply(it->second, true);
  }
  return out;
}

std::chrono::system_clock::time_point parse_iso8601(std::string_view text) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  std::string str(text);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6)
    throw Error(ErrorKind::kDataErr, "invalid timestamp '" + str + "'");
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  std::time_t t = timegm(&tm);
  // A numeric offset after the seconds (and optional fraction): "+02:00" / "-0500".
  std::size_t p = 19;
  while (p < str.size() && (str[p] == '.' || (str[p] >= '0' && str[p] <= '9'))) ++p;
  if (p < str.size() && (str[p] == '+' || str[p] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(str.c_str() + p + 1, "%2d:%2d", &oh, &om) < 1 &&
        std::sscanf(str.c_str() + p + 1, "%2d%2d", &oh, &om) < 1)
      throw Error(ErrorKind::kDataErr, "invalid timestamp offset '" + str + "'");
    long off = (oh * 3600L + om * 60L) * (str[p] == '+' ? 1 : -1);
    t -= off;
  }
  return std::chrono::system_clock::from_time_t(t);
}

CredentialProvider::CredentialProvider(CredentialOptions options) : options_(std::move(options)) {}

void CredentialProvider::invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  stale_ = true;
}

std::string CredentialProvider::source() {
  std::lock_guard<std::mutex> lock(mu_);
  return source_name_;
}

sigv4::Credentials CredentialProvider::get() {
  std::lock_guard<std::mutex> lock(mu_);
  if (kind_ == Source::kNone) {
    resolve();
    stale_ = false;
    log::debug("credentials from {} (key {})", source_name_, masked_key(current_.credentials.access_key_id));
    return current_.credentials;
  }
  auto now = std::chrono::system_clock::now();
  bool expiring = current_.expiration && now + options_.refresh_margin >= *current_.expiration;
  if (kind_ != Source::kStatic && (stale_ || expiring)) {
    try {
      current_ = fetch();
      stale_ = false;
      log::debug("credentials refreshed from {} (key {})", source_name_,
                 masked_key(current_.credentials.access_key_id));
    } catch (const Error& e) {
      if (!current_.expiration || now >= *current_.expiration) throw;
      log::warn("credential refresh from {} failed, using the current ones until they expire: {}",
                source_name_, e.what());
    }
  }
  return current_.credentials;
}

void CredentialProvider::resolve() {
  // 1. Environment.
  std::string id = env("AWS_ACCESS_KEY_ID"), secret = env("AWS_SECRET_ACCESS_KEY");
  if (!id.empty() && !secret.empty()) {
    kind_ = Source::kStatic;
    source_name_ = "environment";
    current_ = {{id, secret, env("AWS_SESSION_TOKEN")}, std::nullopt};
    return;
  }
  // 2. Shared credentials / config files.
  bool named = !options_.profile.empty() || !env("AWS_PROFILE").empty();
  std::string name = profile_name(options_.profile);
  ProfileSettings p = load_profile(name);
  if (named && !p.found)
    throw Error(ErrorKind::kConfig, "AWS profile '" + name + "' not found in " +
                                        home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials") +
                                        " or " + home_file("AWS_CONFIG_FILE", ".aws/config"));
  if (p.found) {
    if (!p.access_key_id.empty() && !p.secret_access_key.empty()) {
      kind_ = Source::kStatic;
      source_name_ = "shared credentials (profile " + name + ")";
      current_ = {{p.access_key_id, p.secret_access_key, p.session_token}, std::nullopt};
      return;
    }
    if (!p.role_arn.empty() && !p.web_identity_token_file.empty()) {
      kind_ = Source::kWebIdentity;
      source_name_ = "web identity (profile " + name + ")";
      role_arn_ = p.role_arn;
      token_file_ = p.web_identity_token_file;
      session_name_ = p.role_session_name;
      current_ = fetch();
      return;
    }
    if (!p.source_profile.empty() || !p.credential_process.empty())
      throw Error(ErrorKind::kConfig, "AWS profile '" + name +
                                          "': source_profile/credential_process are not supported; "
                                          "use keys, web identity or environment credentials");
  }
  // 3. Web identity from the environment (EKS IRSA, GitHub Actions OIDC).
  if (!env("AWS_ROLE_ARN").empty() && !env("AWS_WEB_IDENTITY_TOKEN_FILE").empty()) {
    kind_ = Source::kWebIdentity;
    source_name_ = "web identity";
    role_arn_ = env("AWS_ROLE_ARN");
    token_file_ = env("AWS_WEB_IDENTITY_TOKEN_FILE");
    session_name_ = env("AWS_ROLE_SESSION_NAME");
    current_ = fetch();
    return;
  }
  // 4. ECS / EKS Pod Identity container credentials.
  if (!env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty() ||
      !env("AWS_CONTAINER_CREDENTIALS_FULL_URI").empty()) {
    kind_ = Source::kContainer;
    source_name_ = "container credentials";
    current_ = fetch();
    return;
  }
  // 5. EC2 instance metadata (IMDSv2).
  if (lower(env("AWS_EC2_METADATA_DISABLED")) != "true") {
    try {
      kind_ = Source::kImds;
      source_name_ = "EC2 instance metadata";
      current_ = fetch();
      return;
    } catch (const Error& e) {
      kind_ = Source::kNone;
      source_name_.clear();
      log::debug("no instance metadata credentials: {}", e.what());
    }
  }
  throw Error(ErrorKind::kNoPerm,
              "no AWS credentials found (tried: environment, profile '" + name +
                  "' in shared files, web identity, container, EC2 instance metadata)");
}

TimedCredentials CredentialProvider::fetch() {
  switch (kind_) {
    case Source::kWebIdentity: return fetch_web_identity();
    case Source::kContainer: return fetch_container();
    case Source::kImds: return fetch_imds();
    default: return current_;
  }
}

TimedCredentials CredentialProvider::fetch_web_identity() {
  // The token file is re-read on every refresh: Kubernetes and CI runners rotate it.
  std::string token = trim(read_file(token_file_));
  if (token.empty()) throw Error(ErrorKind::kNoPerm, "web identity token file '" + token_file_ + "' is empty");
  std::string endpoint = env("AWS_ENDPOINT_URL_STS");
  if (endpoint.empty()) endpoint = env("AWS_ENDPOINT_URL");
  if (endpoint.empty())
    endpoint = options_.region.empty() ? "https://sts.amazonaws.com"
                                       : "https://sts." + options_.region + ".amazonaws.com";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  std::string session = session_name_.empty()
                            ? "hfkit-" + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                            std::chrono::system_clock::now().time_since_epoch())
                                                            .count())
                            : session_name_;
  std::string body = "Action=AssumeRoleWithWebIdentity&Version=" + std::string(kStsVersion) +
                     "&RoleArn=" + form_encode(role_arn_) + "&RoleSessionName=" + form_encode(session) +
                     "&WebIdentityToken=" + form_encode(token);
  HttpClient http(options_.http);
  HttpRequest req;
  req.method = "POST";
  req.url = endpoint + "/";
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  req.body = body;
  std::string what = "STS AssumeRoleWithWebIdentity (" + role_arn_ + ")";
  HttpResponse resp;
  for (int attempt = 0; attempt < kFetchAttempts; ++attempt) {
    resp = http.perform(req);
    std::string code = xml::text(resp.body, "Code");
    bool retry = transient_status(resp.status) || code == "IDPCommunicationError";
    if (resp.ok() || !retry) break;
    if (attempt + 1 < kFetchAttempts) backoff(attempt);
  }
  if (!resp.ok()) {
    if (resp.status == 0)
      throw Error(ErrorKind::kUnavailable, what + ": " + redact_url(endpoint) + " unreachable: " + resp.error);
    std::string code = xml::text(resp.body, "Code"), msg = xml::text(resp.body, "Message");
    throw Error(resp.status >= 500 ? ErrorKind::kTempFail : ErrorKind::kNoPerm,
                what + ": HTTP " + std::to_string(resp.status) + " " + code + ": " + msg);
  }
  std::string creds = xml::text(resp.body, "Credentials");
  TimedCredentials out;
  auto cdoc = xml::elements(resp.body, "Credentials");
  std::string_view c = cdoc.empty() ? std::string_view() : cdoc.front();
  out.credentials.access_key_id = xml::text(c, "AccessKeyId");
  out.credentials.secret_access_key = xml::text(c, "SecretAccessKey");
  out.credentials.session_token = xml::text(c, "SessionToken");
  if (out.credentials.access_key_id.empty() || out.credentials.secret_access_key.empty())
    throw Error(ErrorKind::kNoPerm, what + ": response has no credentials");
  std::string exp = xml::text(c, "Expiration");
  if (!exp.empty()) out.expiration = parse_iso8601(exp);
  return out;
}

TimedCredentials CredentialProvider::fetch_container() {
  std::string url;
  std::string rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (!rel.empty()) {
    url = std::string(kEcsHost) + rel;
  } else {
    url = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    // Plain http is allowed only to the container agent's link-local or loopback addresses.
    bool https = url.rfind("https://", 0) == 0;
    std::string rest = url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
    std::string host = rest.substr(0, rest.find_first_of("/"));
    host = host.substr(host.rfind('@') + 1);  // userinfo is no part of the host (and is secret)
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.find(']') - 1);
    else host = host.substr(0, host.find(':'));
    bool allowed = https || host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1" ||
                   host == "169.254.170.2" || host == "169.254.170.23" || host == "fd00:ec2::23";
    if (!allowed)
      throw Error(ErrorKind::kConfig, "AWS_CONTAINER_CREDENTIALS_FULL_URI host '" + host +
                                          "' is not a loopback or container-agent address");
  }
  HttpRequest req;
  req.url = url;
  std::string token_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  std::string token = !token_file.empty() ? trim(read_file(token_file)) : env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  if (!token.empty()) req.headers.emplace_back("Authorization", token);
  HttpSettings s = options_.http;
  s.connect_timeout_s = std::min(s.connect_timeout_s, 2.0);
  HttpClient http(s);
  HttpResponse resp;
  for (int attempt = 0; attempt < kFetchAttempts; ++attempt) {
    resp = http.perform(req);
    if (resp.ok() || !transient_status(resp.status)) break;
    if (attempt + 1 < kFetchAttempts) backoff(attempt);
  }
  if (!resp.ok()) {
    if (resp.status == 0) throw Error(ErrorKind::kUnavailable, "container credentials endpoint unreachable: " + resp.error);
    throw Error(resp.status >= 500 ? ErrorKind::kTempFail : ErrorKind::kNoPerm,
                "container credentials endpoint: HTTP " + std::to_string(resp.status));
  }
  return from_json(resp.body, "container credentials");
}

TimedCredentials CredentialProvider::fetch_imds() {
  std::string base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (base.empty()) base = kImdsEndpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  HttpSettings s = options_.http;
  s.connect_timeout_s = kImdsTimeoutS;
  s.read_timeout_s = kImdsTimeoutS;
  HttpClient http(s);
  HttpRequest tok;
  tok.method = "PUT";
  tok.url = base + "/latest/api/token";
  tok.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", std::to_string(kImdsTokenTtlS)}};
  HttpResponse t = http.perform(tok);
  if (!t.ok())
    throw Error(t.status == 0 ? ErrorKind::kUnavailable : ErrorKind::kNoPerm,
                "EC2 instance metadata token: " + (t.status == 0 ? t.error : "HTTP " + std::to_string(t.status)));
  std::string token = trim(t.body);
  auto get = [&](const std::string& path) {
    HttpRequest r;
    r.url = base + path;
    r.headers = {{"X-aws-ec2-metadata-token", token}};
    HttpResponse resp = http.perform(r);
    if (!resp.ok())
      throw Error(resp.status == 0 ? ErrorKind::kUnavailable : ErrorKind::kNoPerm,
                  "EC2 instance metadata " + path + ": " +
                      (resp.status == 0 ? resp.error : "HTTP " + std::to_string(resp.status)));
    return resp.body;
  };
  std::string roles = trim(get("/latest/meta-data/iam/security-credentials/"));
  std::string role = trim(roles.substr(0, roles.find('\n')));
  if (role.empty()) throw Error(ErrorKind::kNoPerm, "EC2 instance metadata: no IAM role attached");
  return from_json(get("/latest/meta-data/iam/security-credentials/" + role), "EC2 instance metadata");
}

}  // namespace hf::storage
