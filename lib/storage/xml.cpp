// Minimal XML scanning for S3/STS responses (see xml.h).
#include "storage/xml.h"

#include <charconv>

namespace hf::storage::xml {
namespace {

// Position just after "<tag" when followed by '>', '/', or whitespace; npos when absent.
std::size_t find_open(std::string_view doc, std::string_view tag, std::size_t from) {
  while (true) {
    std::size_t p = doc.find('<', from);
    if (p == std::string_view::npos) return p;
    std::size_t end = p + 1 + tag.size();
    if (doc.compare(p + 1, tag.size(), tag) == 0 && end < doc.size()) {
      char c = doc[end];
      if (c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n') return end;
    }
    from = p + 1;
  }
}

void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::vector<std::string_view> elements(std::string_view doc, std::string_view tag) {
  std::vector<std::string_view> out;
  std::string close = "</" + std::string(tag) + ">";
  std::size_t pos = 0;
  while (true) {
    std::size_t p = find_open(doc, tag, pos);
    if (p == std::string_view::npos) break;
    std::size_t gt = doc.find('>', p);
    if (gt == std::string_view::npos) break;
    if (doc[gt - 1] == '/') {  // <tag/>
      out.emplace_back();
      pos = gt + 1;
      continue;
    }
    std::size_t c = doc.find(close, gt + 1);
    if (c == std::string_view::npos) break;
    out.push_back(doc.substr(gt + 1, c - gt - 1));
    pos = c + close.size();
  }
  return out;
}

std::string text(std::string_view doc, std::string_view tag) {
  auto all = elements(doc, tag);
  return all.empty() ? std::string() : unescape(all.front());
}

bool has(std::string_view doc, std::string_view tag) { return !elements(doc, tag).empty(); }

std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      // Strict digits only (no sign, no spaces): from_chars, which never throws.
      std::string_view num = ent.substr(1);
      bool hex = !num.empty() && (num[0] == 'x' || num[0] == 'X');
      if (hex) num.remove_prefix(1);
      unsigned long cp = 0;
      auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), cp, hex ? 16 : 10);
      if (num.empty() || ec != std::errc() || p != num.data() + num.size() || cp > 0x10FFFF) {
        out.append(s.substr(i, semi - i + 1));
      } else {
        append_utf8(out, cp);
      }
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += "&#" + std::to_string(static_cast<int>(c)) + ";";  // control chars in keys
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace hf::storage::xml
