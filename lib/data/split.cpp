// Split specs and deterministic, optionally stratified split assignment.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "data/data.h"

namespace hf::data {
namespace {

// Sizes for n items by largest remainder, so they always sum to n and ties go to earlier splits.
std::vector<std::size_t> split_sizes(std::size_t n, const std::vector<double>& fractions) {
  std::vector<std::size_t> sizes(fractions.size());
  std::vector<std::pair<double, std::size_t>> remainders;
  std::size_t used = 0;
  for (std::size_t i = 0; i < fractions.size(); ++i) {
    double exact = fractions[i] * static_cast<double>(n);
    sizes[i] = static_cast<std::size_t>(std::floor(exact + 1e-9));
    used += sizes[i];
    remainders.emplace_back(exact - static_cast<double>(sizes[i]), i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; used < n && k < remainders.size(); ++k, ++used) sizes[remainders[k].second]++;
  return sizes;
}

// Fisher–Yates with an explicit draw, unlike std::shuffle whose algorithm differs between
// standard libraries.
void shuffle(std::vector<std::size_t>& v, std::mt19937_64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    std::size_t j = static_cast<std::size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace

std::vector<std::pair<std::string, double>> parse_split_spec(const std::string& spec) {
  std::vector<std::pair<std::string, double>> out;
  double sum = 0;
  std::size_t start = 0;
  while (start <= spec.size()) {
    std::size_t comma = spec.find(',', start);
    std::string part = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto eq = part.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(ErrorKind::kUsage, "--split: expected name=fraction, got '" + part + "'");
    std::string name = part.substr(0, eq);
    // The name becomes <output>/<name>.safetensors: '../x' would write outside the directory.
    if (!is_safe_name(name))
      throw Error(ErrorKind::kUsage, "--split: bad split name '" + name + "': use up to " +
                                         std::to_string(kMaxNameLength) +
                                         " of A-Z a-z 0-9 _ . - (not starting with '.')");
    double f = 0;
    try {
      std::size_t used = 0;
      f = std::stod(part.substr(eq + 1), &used);
      if (used != part.size() - eq - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw Error(ErrorKind::kUsage, "--split: bad fraction in '" + part + "'");
    }
    if (!(f >= 0 && f <= 1)) throw Error(ErrorKind::kUsage, "--split: fraction out of [0, 1] in '" + part + "'");
    for (const auto& [n, _] : out)
      if (n == name) throw Error(ErrorKind::kUsage, "--split: split '" + name + "' given twice");
    out.emplace_back(name, f);
    sum += f;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (std::fabs(sum - 1.0) > 1e-6) throw Error(ErrorKind::kUsage, "--split: fractions must sum to 1");
  return out;
}

std::vector<int> assign_splits(std::size_t n, const std::vector<double>& fractions, std::uint64_t seed,
                               const std::vector<int>* strata) {
  std::vector<int> out(n, 0);
  std::map<int, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < n; ++i) groups[strata ? (*strata)[i] : 0].push_back(i);
  std::mt19937_64 rng(seed);
  for (auto& [stratum, members] : groups) {
    shuffle(members, rng);
    auto sizes = split_sizes(members.size(), fractions);
    std::size_t pos = 0;
    for (std::size_t s = 0; s < sizes.size(); ++s)
      for (std::size_t k = 0; k < sizes[s]; ++k) out[members[pos++]] = static_cast<int>(s);
  }
  return out;
}

}  // namespace hf::data
