// Fatbin image selection by CUDA's compatibility rules (see arch.h).
#include "gpu/arch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace hf::gpu {

namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  for (char c : s + ";") {
    if (c == ';' || c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else {
      item += c;
    }
  }
  return out;
}

// "90a" -> {90, 'a'}; "120" -> {120, 0}. Throws on anything else.
std::pair<int, char> parse_number(const std::string& s, const std::string& entry) {
  std::size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0 || s.size() > digits + 1)
    throw Error(ErrorKind::kInternal, fmt::format("CUDA arch list entry '{}' not understood", entry));
  return {std::stoi(s.substr(0, digits)), digits < s.size() ? s[digits] : '\0'};
}

void add_cubin(ArchList& list, std::pair<int, char> arch) {
  if (arch.second == 'a')
    list.exact_cubins.push_back(arch.first);
  else
    list.cubins.push_back(arch.first);
}

}  // namespace

ArchList parse_cmake_archs(const std::string& s) {
  ArchList list;
  for (const std::string& entry : split_list(s)) {
    std::string number = entry;
    std::string kind;
    if (auto dash = entry.find('-'); dash != std::string::npos) {
      number = entry.substr(0, dash);
      kind = entry.substr(dash + 1);
    }
    auto arch = parse_number(number, entry);
    if (kind.empty() || kind == "real") add_cubin(list, arch);
    if (kind.empty() || kind == "virtual") list.ptx.push_back(arch.first);
    if (!kind.empty() && kind != "real" && kind != "virtual")
      throw Error(ErrorKind::kInternal, fmt::format("CUDA arch list entry '{}' not understood", entry));
  }
  return list;
}

ArchList parse_torch_archs(const std::string& s) {
  ArchList list;
  for (const std::string& entry : split_list(s)) {
    if (entry.rfind("sm_", 0) == 0)
      add_cubin(list, parse_number(entry.substr(3), entry));
    else if (entry.rfind("compute_", 0) == 0)
      list.ptx.push_back(parse_number(entry.substr(8), entry).first);
    else
      throw Error(ErrorKind::kInternal, fmt::format("CUDA arch list entry '{}' not understood", entry));
  }
  return list;
}

std::string pick_image(const ArchList& list, int cc) {
  if (std::find(list.exact_cubins.begin(), list.exact_cubins.end(), cc) != list.exact_cubins.end())
    return fmt::format("cubin sm_{}a", cc);
  int best = -1;
  for (int a : list.cubins)
    if (a / 10 == cc / 10 && a <= cc) best = std::max(best, a);
  if (best >= 0) return fmt::format("cubin sm_{}", best);
  for (int a : list.ptx)
    if (a <= cc) best = std::max(best, a);
  if (best >= 0) return fmt::format("PTX compute_{} (JIT)", best);
  return {};
}

}  // namespace hf::gpu
