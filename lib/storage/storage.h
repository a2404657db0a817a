// Remote storage for hfkit: one Backend interface over a local directory (path or file://, e.g.
// NFS/Lustre) and S3 or any S3-compatible store (s3://bucket/prefix, SigV4 over libcurl), a sync
// engine with a manifest, and the checkpoint helpers hf-train uses (background Uploader, newest
// complete remote checkpoint, download). Knows nothing of training: callers hand it directories.
// S3 API: https://docs.aws.amazon.com/AmazonS3/latest/API/ ; SigV4: see sigv4.h.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace hf::storage {

// ---------------------------------------------------------------------------------------------
// Locations

enum class Scheme { kLocal, kS3 };

// A parsed location. For S3, `prefix` is the key prefix without a leading '/'; a prefix naming a
// "directory" ends up with a trailing '/' when joined (see key_for). For local, `path` is the
// directory path as given (file:// stripped).
struct Url {
  Scheme scheme = Scheme::kLocal;
  std::string bucket;  // S3 only
  std::string prefix;  // S3 only: "" or "a/b" (never a leading '/', trailing '/' removed)
  std::string path;    // local only

  // "s3://bucket/prefix" or the local path.
  std::string str() const;
  // The location of `rel` ('/'-separated, relative) below this one.
  Url child(std::string_view rel) const;
  // The S3 key of `rel` below the prefix ("prefix/rel", or "rel" for an empty prefix).
  std::string key_for(std::string_view rel) const;
};

// Accepts "s3://bucket[/prefix]", "file:///abs/path", or a plain path. Throws Error(kUsage) on an
// unknown scheme, an empty bucket or an invalid bucket name.
Url parse_url(std::string_view text);

// `url` with any userinfo password replaced by "***" ("http://u:***@host/p"), for every place a
// URL that a user typed (an endpoint) is printed, logged or saved. Strings that are not URLs come
// back unchanged; an unparsable URL with an '@' in its authority is redacted by hand.
std::string redact_url(std::string_view url);

// An untrusted name (object key, file name) for text output and messages: control bytes as \xNN
// and '\' as "\\", so a key cannot move the cursor, forge lines or hide characters.
std::string printable(std::string_view name);

// ---------------------------------------------------------------------------------------------
// Connection and transfer settings

enum class ChecksumAlgorithm {
  kSha256,  // x-amz-checksum-sha256 on PUT and every part (AWS flexible checksums)
  kMd5,     // Content-MD5 on PUT and every part (older S3-compatible stores)
};

// Defaults match the AWS CLI/SDK where they have an equivalent. Empty strings mean "resolve from
// the environment": endpoint AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, region AWS_REGION /
// AWS_DEFAULT_REGION / the profile's region / us-east-1, profile AWS_PROFILE / "default".
struct Options {
  std::string endpoint_url;
  std::string region;
  std::string profile;
  bool path_style = false;      // forced on for endpoints that are IP addresses or localhost
  bool verify_ssl = true;       // off only through an explicit --no-verify-ssl
  bool anonymous = false;       // unsigned requests (public buckets)
  double connect_timeout_s = 10;
  double read_timeout_s = 60;   // a transfer that moves nothing for this long is aborted
  int max_attempts = 5;         // per request, first try included (AWS_MAX_ATTEMPTS)
  int jobs = 8;                 // parallel requests (files, parts, ranges)
  std::uint64_t multipart_threshold = 64ull << 20;  // files at least this big use multipart/ranges
  std::uint64_t part_size = 16ull << 20;  // upload part size (min 5 MiB for S3); downloads use one
                                          // range per job, at least this and at most 256 MiB
  ChecksumAlgorithm checksum = ChecksumAlgorithm::kSha256;
  bool progress = false;        // a progress line on stderr (only drawn on a TTY)
  // When set and true, running operations stop early with hf::Cancelled (core/cancel.h): temp
  // files are removed and multipart uploads aborted. Not owned; must outlive the operation.
  // (Uploader ignores it and uses its own, so a SIGTERM never cancels the preemption upload.)
  const std::atomic<bool>* cancel = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Backends

struct ObjectInfo {
  std::string key;            // relative to the backend's root, '/'-separated; raw (not validated)
  std::uint64_t size = 0;
  std::string etag;           // S3 ETag without quotes; local: "<mtime_ns>-<size>"
  std::string last_modified;  // ISO-8601 UTC as the store reports it
  std::string sha256;         // hex content hash when the store knows it (HEAD only); else ""
};

struct DirListing {
  std::vector<ObjectInfo> objects;    // directly under the listed prefix
  std::vector<std::string> prefixes;  // "sub/" entries (relative, trailing '/')
};

// How a download's content was checked against what the store recorded (strongest first).
enum class Verified {
  kSha256,        // full SHA-256 from x-amz-meta-sha256 (hfkit uploads, single or multipart)
  kMd5,           // single-part ETag = MD5 of the content (no SSE-KMS/SSE-C)
  kMultipartMd5,  // multipart ETag = MD5 of the part MD5s, part size learnt from HEAD ?partNumber=1
  kSizeOnly,      // nothing else recorded (e.g. SSE-KMS objects from other clients): size only
};
std::string_view verified_name(Verified v);

struct Fetched {
  std::string sha256;  // hex SHA-256 of the bytes written
  Verified verified = Verified::kSizeOnly;
};

// One remote root (an S3 prefix or a local directory). All methods are thread-safe and retry
// transient failures internally (Options::max_attempts). They throw hf::Error: kNoPerm on 401/403,
// kNoInput on a missing bucket/object, kUnavailable when the endpoint stays unreachable, kTempFail
// when throttling/timeouts persist, kIo on integrity failures that persist.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const Url& root() const = 0;

  // Every object below `sub` (relative, "" = all), recursive, sorted by key. S3 paginates
  // ListObjectsV2 internally. Keys ending in '/' (console "folders") are included as-is.
  virtual std::vector<ObjectInfo> list(std::string_view sub = "") = 0;
  // One level below `sub` ("" or ending in '/').
  virtual DirListing list_dir(std::string_view sub) = 0;
  // nullopt when the object does not exist. Fills ObjectInfo::sha256 when recorded.
  virtual std::optional<ObjectInfo> head(std::string_view key) = 0;
  // Uploads the file at `local_path` as `key` (multipart at/above the threshold, parts in
  // parallel, aborted on failure). `sha256` is the file's hex hash if the caller knows it ("" =
  // computed here); it is stored as x-amz-meta-sha256. Returns the new object's info.
  virtual ObjectInfo put_file(const std::string& local_path, std::string_view key,
                              const std::string& sha256 = "") = 0;
  virtual ObjectInfo put_bytes(std::string_view data, std::string_view key) = 0;
  // Writes the object's bytes into `fd` (from offset 0, which must be an empty regular file),
  // ranged parallel GETs for large objects, pinned to `expected.etag` when it is non-empty (a
  // change mid-download is an error, not a mix). Verifies as described by Verified; a mismatch is
  // retried, then Error(kIo). The caller owns `fd` and renames the file afterwards.
  virtual Fetched get_to_fd(const ObjectInfo& expected, int fd) = 0;
  // Whole small object into memory (no verification beyond size). Throws kNoInput when missing.
  virtual std::string get_bytes(std::string_view key) = 0;
  // Deletes keys (batched); missing keys are not an error.
  virtual void remove(const std::vector<std::string>& keys) = 0;
  // A presigned GET (or PUT) URL valid for `expires` (1 s .. 7 days). Local: Error(kUsage).
  virtual std::string presign(std::string_view key, std::chrono::seconds expires,
                              std::string_view method = "GET") = 0;
  // Payload bytes sent + received so far (for progress displays).
  virtual std::uint64_t bytes_transferred() const { return 0; }
};

// Opens the backend for `url`. For S3 this resolves credentials lazily (first request).
std::unique_ptr<Backend> open_backend(const Url& url, const Options& options);

// ---------------------------------------------------------------------------------------------
// Path filters (--include / --exclude)

// Glob match of a '/'-separated relative path: '*' and '?' stay within one component, '**'
// crosses components, "[abc]"/"[!a-z]" classes, '\' escapes. A pattern without '/' is matched
// against every component (so "*.tmp" matches "a/b/x.tmp"); a pattern with '/' against the whole
// path. A pattern that matches a leading directory matches everything below it ("logs" and
// "checkpoint-*" select "logs/a.txt", "checkpoint-5/model.safetensors").
bool glob_match(std::string_view pattern, std::string_view path);

// Selected = (no includes or any include matches) and no exclude matches.
struct PathFilter {
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  bool selected(std::string_view rel_path) const;
};

// ---------------------------------------------------------------------------------------------
// Sync

struct SyncOptions {
  bool delete_extra = false;  // --delete: remove destination files absent from the source
  bool force = false;         // --force: let --delete act even when the source side is empty
  bool dry_run = false;       // plan only: nothing is written, sent or deleted (files may be
                              // read to compare hashes, so the plan is exact)
  PathFilter filter;
  // Manifest (size + mtime + SHA-256 + remote ETag per file): unchanged files are neither re-read
  // nor re-sent. "" = $XDG_CACHE_HOME/hfkit/sync/<hash of local dir and URL>.json; "none" = off.
  std::string manifest_path;
};

struct SyncAction {
  std::string kind;  // "upload", "download", "delete"
  std::string path;  // relative path
  std::uint64_t size = 0;
};

struct SyncSummary {
  std::string command;                  // "push" / "pull"
  std::string source, destination;
  std::uint64_t files_transferred = 0;
  std::uint64_t bytes_transferred = 0;
  std::uint64_t files_unchanged = 0;
  std::uint64_t files_deleted = 0;
  std::uint64_t files_hashed = 0;        // files read to compute their hash (manifest misses)
  bool dry_run = false;
  double seconds = 0;
  std::vector<SyncAction> actions;       // what was (or, dry-run, would be) done
};

// Mirrors local directory `local_dir` to `dest`. Each object appears atomically (single PUT or a
// completed multipart upload). Per-file failures do not stop other files; at the end the first
// failure is rethrown as hf::Error (its kind decides the exit code) with the failure count.
SyncSummary push(const std::string& local_dir, const Url& dest, const Options& options,
                 const SyncOptions& sync = {});

// Mirrors `src` into `local_dir` (created if missing). Safety: every key is checked before anything
// is written — keys with "." or ".." components, empty components, a leading '/', NUL or control
// characters, or whose path crosses a symlink inside `local_dir` make the whole pull fail with
// Error(kDataErr) and nothing is written. Files are written to hidden temp files next to their
// target and renamed only after their checksum verified; on failure or cancel temps are removed.
// No objects under `src` (after the filter) is Error(kNoInput) and nothing changes, unless
// delete_extra and force are both set (then local_dir is emptied). Likewise push() with
// delete_extra refuses (kNoInput) a source with no selected files unless force is set.
SyncSummary pull(const Url& src, const std::string& local_dir, const Options& options,
                 const SyncOptions& sync = {});

// The summary as one JSON object (the --json output of hf-sync).
std::string summary_json(const SyncSummary& summary);

// Checks that `key` may become a file below a local directory (see pull()); returns a reason when
// it may not, nullopt when it is safe.
std::optional<std::string> unsafe_key_reason(std::string_view key);

// ---------------------------------------------------------------------------------------------
// hf-sync commands (the tool's main only parses flags and calls one of these). stdout gets the
// product (listing, URL, JSON summary); errors are thrown.

struct CommandOptions {
  std::string source;       // push: LOCAL, pull/ls/rm/presign: URL
  std::string destination;  // push: URL, pull: LOCAL
  Options storage;
  SyncOptions sync;
  bool json = false;        // --json summary / JSON-lines listing
  bool recursive = false;   // ls / rm: whole prefix
  std::int64_t expires_in_s = 3600;  // presign
  std::string method = "GET";        // presign
};

Outcome run_push(const CommandOptions& options, std::ostream& out);
Outcome run_pull(const CommandOptions& options, std::ostream& out);
Outcome run_ls(const CommandOptions& options, std::ostream& out);
Outcome run_rm(const CommandOptions& options, std::ostream& out);
Outcome run_presign(const CommandOptions& options, std::ostream& out);

// ---------------------------------------------------------------------------------------------
// Checkpoints (for hf-train)
//
// The transfer protocol of a checkpoint directory: its completeness marker is uploaded LAST and
// deleted FIRST, so a remote checkpoint without its marker does not exist for readers. What the
// directories and the marker are called, and which checkpoints rotation keeps, are hf-train's
// rules (lib/train): they come in as a CheckpointLayout and a KeepPolicy. Typical use:
//
//   Uploader up({.url = parse_url(sync_to), .storage = opts, .layout = L, .keep = policy});
//   ... after writing output_dir/<name> (marker included):  up.enqueue(dir);
//   ... before deleting a local checkpoint dir:  if (!up.in_use(dir)) remove it;
//   ... at the end: up.drain(timeout); push(output_dir, url, opts, ...);  // the final model
//   resume:  if (auto c = find_latest_complete_checkpoint(url, opts, L))
//              local = download_checkpoint(*c, output_dir, opts, L);

struct CheckpointLayout {
  std::string marker;  // file name inside each checkpoint dir
  // The step of a directory name, nullopt for a name that is not a checkpoint's.
  std::function<std::optional<std::int64_t>(std::string_view name)> step_of;
};

struct RemoteCheckpoint {
  std::string name;       // the directory's name below the root
  std::int64_t step = 0;  // layout.step_of(name)
  Url url;                // <root>/<name>
};

// Given the complete checkpoints below a root (oldest step first): the names rotation must keep.
// Every other complete one is deleted (marker first).
using KeepPolicy = std::function<std::vector<std::string>(const std::vector<RemoteCheckpoint>& complete)>;

// Complete checkpoints (marker present) below `root`, oldest step first. A listing of `root` plus
// one HEAD per candidate.
std::vector<RemoteCheckpoint> list_complete_checkpoints(const Url& root, const Options& options,
                                                        const CheckpointLayout& layout);
// The newest complete checkpoint, or nullopt when there is none (not an error).
std::optional<RemoteCheckpoint> find_latest_complete_checkpoint(const Url& root, const Options& options,
                                                                const CheckpointLayout& layout);
// Downloads `ckpt` to <local_parent>/<name>: pulled (verified) into a hidden temp dir beside it,
// marker last, then renamed into place; an existing <name> dir is replaced only after the
// download finished. Returns the local directory. Throws like pull(); on failure nothing appears.
std::string download_checkpoint(const RemoteCheckpoint& ckpt, const std::string& local_parent,
                                const Options& options, const CheckpointLayout& layout);
// Uploads one local checkpoint dir to `dest`: a stale remote marker is deleted first, then the
// files (incremental, stale remote files deleted), then the marker. Requires: the local marker
// exists (Error(kNoInput) otherwise).
void upload_checkpoint(const std::string& local_dir, const Url& dest, const Options& options,
                       const CheckpointLayout& layout);
// Deletes the complete checkpoints below `root` that `keep` does not name, marker first so a
// reader never sees a complete-looking partial one; also deletes incomplete ones (abandoned
// uploads) older than the newest complete one and not named by `keep`. An empty `keep` keeps all.
void rotate_checkpoints(const Url& root, const KeepPolicy& keep, const Options& options,
                        const CheckpointLayout& layout);

struct UploaderOptions {
  Url url;                     // remote root; checkpoints go to url/<basename of local dir>
  Options storage;
  CheckpointLayout layout;
  KeepPolicy keep;             // rotation after each upload (called on the upload thread); empty: keep all
  std::size_t max_pending = 2; // waiting uploads; beyond it the oldest waiting one is dropped
  double retry_delay_max_s = 60;  // back-off between attempts when the store is unreachable
};

struct UploaderStatus {
  std::uint64_t uploaded = 0;        // checkpoints fully uploaded
  std::uint64_t dropped = 0;         // superseded before their turn (newest wins)
  std::uint64_t failed_attempts = 0;
  std::size_t pending = 0;           // waiting + in flight
  std::string last_uploaded;         // local dir of the newest uploaded checkpoint
  std::string last_error;            // message of the latest failure ("" after a success)
};

// A background thread uploading checkpoint directories while training continues. enqueue()
// never waits for the network; failures are logged and retried with back-off until a newer
// checkpoint supersedes the item. Thread-safe. Rotation (options.keep) runs after each upload.
class Uploader {
 public:
  explicit Uploader(UploaderOptions options);
  // Stops the thread: an in-flight upload is cancelled (its marker is never sent). Call drain()
  // first for a clean end.
  ~Uploader();
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  // Queues a complete local checkpoint dir (marker written). Returns at once.
  void enqueue(const std::string& local_dir);
  // True while `local_dir` is waiting or being uploaded: do not delete it locally yet.
  bool in_use(const std::string& local_dir) const;
  // Waits until nothing is waiting or in flight, or `timeout` passes, or (max_failures > 0) that
  // many upload attempts failed meanwhile (an unreachable store). True when drained.
  bool drain(std::chrono::milliseconds timeout, std::uint64_t max_failures = 0);
  UploaderStatus status() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace hf::storage
