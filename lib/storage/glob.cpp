// --include/--exclude glob matching (semantics documented at glob_match in storage.h).
#include <string>

#include "storage/storage.h"

namespace hf::storage {
namespace {

// Matches a bracket class starting at p[i] == '['; sets `next` past ']' (or returns false for a
// malformed class, which then matches a literal '[').
bool match_class(std::string_view p, std::size_t i, char c, std::size_t& next, bool& ok) {
  std::size_t j = i + 1;
  bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
  if (negate) ++j;
  bool matched = false;
  bool first = true;
  while (j < p.size() && (p[j] != ']' || first)) {
    first = false;
    char lo = p[j];
    if (lo == '\\' && j + 1 < p.size()) lo = p[++j];
    char hi = lo;
    if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
      hi = p[j + 2];
      if (hi == '\\' && j + 3 < p.size()) hi = p[++j + 2];
      j += 2;
    }
    if (c >= lo && c <= hi) matched = true;
    ++j;
  }
  if (j >= p.size()) {
    ok = false;
    return false;
  }
  ok = true;
  next = j + 1;
  return matched != negate;
}

// '*' and '?' never match '/'; '**' matches anything, and "**/" also matches zero directories.
bool match_here(std::string_view p, std::string_view s) {
  std::size_t i = 0, j = 0;
  while (i < p.size()) {
    char pc = p[i];
    if (pc == '*') {
      bool globstar = i + 1 < p.size() && p[i + 1] == '*';
      std::size_t rest = i + (globstar ? 2 : 1);
      while (rest < p.size() && p[rest] == '*') ++rest;
      if (globstar && rest < p.size() && p[rest] == '/' && match_here(p.substr(rest + 1), s.substr(j)))
        return true;
      for (std::size_t k = j;; ++k) {
        if (match_here(p.substr(rest), s.substr(k))) return true;
        if (k >= s.size() || (!globstar && s[k] == '/')) return false;
      }
    }
    if (j >= s.size()) return false;
    if (pc == '?') {
      if (s[j] == '/') return false;
      ++i;
      ++j;
      continue;
    }
    if (pc == '[') {
      std::size_t next = 0;
      bool ok = false;
      bool m = s[j] != '/' && match_class(p, i, s[j], next, ok);
      if (ok) {
        if (!m) return false;
        i = next;
        ++j;
        continue;
      }
    }
    if (pc == '\\' && i + 1 < p.size()) pc = p[++i];
    if (pc != s[j]) return false;
    ++i;
    ++j;
  }
  return j == s.size();
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view path) {
  while (!pattern.empty() && pattern.front() == '/') pattern.remove_prefix(1);
  while (!pattern.empty() && pattern.back() == '/') pattern.remove_suffix(1);
  if (pattern.empty()) return false;
  if (pattern.find('/') == std::string_view::npos) {
    // Match any single component: "*.tmp" selects "a/b/x.tmp", "logs" selects "logs/a.txt".
    std::size_t start = 0;
    while (start <= path.size()) {
      std::size_t end = path.find('/', start);
      if (end == std::string_view::npos) end = path.size();
      if (match_here(pattern, path.substr(start, end - start))) return true;
      start = end + 1;
    }
    return false;
  }
  if (match_here(pattern, path)) return true;
  for (std::size_t k = path.find('/'); k != std::string_view::npos; k = path.find('/', k + 1))
    if (match_here(pattern, path.substr(0, k))) return true;  // a leading directory matches
  return false;
}

bool PathFilter::selected(std::string_view rel_path) const {
  bool in = include.empty();
  for (const auto& p : include)
    if (!in && glob_match(p, rel_path)) in = true;
  if (!in) return false;
  for (const auto& p : exclude)
    if (glob_match(p, rel_path)) return false;
  return true;
}

}  // namespace hf::storage
