// The sync manifest: per relative path, the local file's size and mtime when last seen, its
// SHA-256, and the remote object's ETag after the last transfer. A file whose size and mtime match
// is not re-read; one whose remote ETag also matches is not re-sent or re-fetched. Stored as JSON
// in the user's cache directory, written atomically. Internal to lib/storage.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace hf::storage {

struct ManifestEntry {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::string sha256;
  std::string etag;
};

class Manifest {
 public:
  static constexpr int kVersion = 1;
  // $XDG_CACHE_HOME (or ~/.cache)/hfkit/sync/<sha256 of absolute local dir + URL>.json
  static std::string default_path(const std::string& local_dir, const std::string& url);
  // An empty manifest when `path` is missing, unreadable or corrupt (logged: it is only a cache).
  static Manifest load(const std::string& path, const std::string& local_dir, const std::string& url);

  // Atomic write (parents created). Throws Error(kCantCreate/kIo).
  void save() const;
  const ManifestEntry* find(const std::string& rel) const;
  void set(const std::string& rel, ManifestEntry entry) { entries_[rel] = std::move(entry); }
  void erase(const std::string& rel) { entries_.erase(rel); }
  const std::map<std::string, ManifestEntry>& entries() const { return entries_; }
  std::string to_json() const;
  // Throws Error(kDataErr) on malformed JSON or a version mismatch.
  static Manifest from_json(const std::string& text);

 private:
  std::string path_, local_, url_;
  std::map<std::string, ManifestEntry> entries_;
};

}  // namespace hf::storage
