// Just enough XML for S3 and STS responses (flat, element-only, no CDATA or DTDs): find elements
// by tag name, unescape their text; escape text for request bodies. Internal to lib/storage.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hf::storage::xml {

// Raw inner text of every <tag ...>...</tag> (or empty for <tag/>) in document order. Same-name
// elements must not nest (true of S3/STS responses).
std::vector<std::string_view> elements(std::string_view doc, std::string_view tag);
// Unescaped text of the first <tag>, or "" when absent.
std::string text(std::string_view doc, std::string_view tag);
bool has(std::string_view doc, std::string_view tag);
// &amp; &lt; &gt; &quot; &apos; and numeric references; unknown entities are kept as-is.
std::string unescape(std::string_view s);
std::string escape(std::string_view s);

}  // namespace hf::storage::xml
