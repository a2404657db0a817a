// Rank and rendezvous from the environment (torchrun's or Slurm's names) and Slurm's host lists.
#include <fmt/format.h>

#include <charconv>

#include "core/error.h"
#include "dist/dist.h"

namespace hf::dist {
namespace {

Error usage(const std::string& message) { return Error(ErrorKind::kUsage, message); }

// The integer in `name`, in [lo, hi]; nullopt when unset.
std::optional<long long> int_var(const EnvReader& env, const char* name, long long lo, long long hi) {
  const std::optional<std::string> text = env(name);
  if (!text) return std::nullopt;
  long long value = 0;
  const char* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, value);
  if (ec != std::errc() || ptr != end)
    throw usage(fmt::format("environment variable {}: expected an integer, got '{}'", name, *text));
  if (value < lo || value > hi)
    throw usage(fmt::format("environment variable {}: {} is outside [{}, {}]", name, value, lo, hi));
  return value;
}

long long required_int(const EnvReader& env, const char* name, long long lo, long long hi, const char* because) {
  const auto value = int_var(env, name, lo, hi);
  if (!value) throw usage(fmt::format("environment variable {} is not set ({})", name, because));
  return *value;
}

// No job is bigger than this; a bound on values read from the environment.
constexpr long long kMaxWorld = 1 << 20;

// Slurm's SLURM_TASKS_PER_NODE: "4(x2),3" -> the first count, 4 (local ranks on node 0; our node's
// count is what SLURM_NTASKS_PER_NODE gives when set, else this is a fair guess for thread budgets).
std::optional<int> first_count(const std::optional<std::string>& tasks_per_node) {
  if (!tasks_per_node) return std::nullopt;
  int value = 0;
  const auto [ptr, ec] = std::from_chars(tasks_per_node->data(), tasks_per_node->data() + tasks_per_node->size(), value);
  if (ec != std::errc() || value < 1) return std::nullopt;
  return value;
}

void check_ranks(const Placement& p, const char* rank_var, const char* local_var) {
  if (p.rank >= p.world_size)
    throw usage(fmt::format("environment variable {}: rank {} is not below the world size {}", rank_var, p.rank, p.world_size));
  if (p.local_rank >= p.local_world_size)
    throw usage(fmt::format("environment variable {}: local rank {} is not below the local world size {}", local_var,
                            p.local_rank, p.local_world_size));
}

}  // namespace

std::string device_for_rank(const std::string& requested, const std::optional<Placement>& where, bool cuda_available) {
  if (!where || !cuda_available || (requested != "auto" && requested != "cuda")) return requested;
  return fmt::format("cuda:{}", where->local_rank);
}

int port_for_job(long long job_id) { return 20000 + static_cast<int>(job_id % 10000); }

std::optional<Placement> placement_from_env(const EnvReader& env) {
  Placement p;
  if (env("RANK") || env("WORLD_SIZE")) {
    p.source = "torchrun";
    p.world_size = static_cast<int>(required_int(env, "WORLD_SIZE", 1, kMaxWorld, "RANK is"));
    p.rank = static_cast<int>(required_int(env, "RANK", 0, kMaxWorld, "WORLD_SIZE is"));
    if (p.world_size == 1) return std::nullopt;
    p.local_rank = static_cast<int>(int_var(env, "LOCAL_RANK", 0, kMaxWorld).value_or(p.rank));
    p.local_world_size = static_cast<int>(int_var(env, "LOCAL_WORLD_SIZE", 1, kMaxWorld).value_or(p.world_size));
    p.master_addr = env("MASTER_ADDR").value_or("127.0.0.1");
    p.master_port = static_cast<int>(required_int(env, "MASTER_PORT", 1, 65535, "the rendezvous needs it"));
    check_ranks(p, "RANK", "LOCAL_RANK");
    return p;
  }
  if (!env("SLURM_PROCID") || !env("SLURM_NTASKS")) return std::nullopt;
  p.source = "slurm";
  p.world_size = static_cast<int>(required_int(env, "SLURM_NTASKS", 1, kMaxWorld, ""));
  if (p.world_size == 1) return std::nullopt;
  p.rank = static_cast<int>(required_int(env, "SLURM_PROCID", 0, kMaxWorld, ""));
  p.local_rank = static_cast<int>(int_var(env, "SLURM_LOCALID", 0, kMaxWorld).value_or(0));
  p.local_world_size = static_cast<int>(int_var(env, "SLURM_NTASKS_PER_NODE", 1, kMaxWorld)
                                            .value_or(first_count(env("SLURM_TASKS_PER_NODE")).value_or(p.local_rank + 1)));
  if (auto addr = env("MASTER_ADDR")) {
    p.master_addr = *addr;
  } else {
    const auto nodes = env("SLURM_JOB_NODELIST") ? env("SLURM_JOB_NODELIST") : env("SLURM_NODELIST");
    if (!nodes) throw usage("environment variable SLURM_JOB_NODELIST is not set (the rendezvous host is its first node)");
    p.master_addr = expand_nodelist(*nodes).front();
  }
  if (auto port = int_var(env, "MASTER_PORT", 1, 65535)) {
    p.master_port = static_cast<int>(*port);
  } else {
    p.master_port = port_for_job(required_int(env, "SLURM_JOB_ID", 0, 1LL << 62, "the rendezvous port derives from it"));
  }
  check_ranks(p, "SLURM_PROCID", "SLURM_LOCALID");
  return p;
}

std::vector<std::string> expand_nodelist(std::string_view list, std::size_t max_hosts) {
  std::vector<std::string> hosts;
  auto add = [&](std::string host) {
    if (hosts.size() >= max_hosts) throw usage(fmt::format("node list '{}': more than {} hosts", list, max_hosts));
    hosts.push_back(std::move(host));
  };
  auto bad = [&](const std::string& why) { return usage(fmt::format("node list '{}': {}", list, why)); };
  std::size_t i = 0;
  while (i < list.size()) {
    // One item: prefix[ranges]suffix, up to a comma outside brackets.
    const std::size_t open = list.find_first_of("[,", i);
    if (open == std::string_view::npos || list[open] == ',') {
      const std::size_t end = open == std::string_view::npos ? list.size() : open;
      if (end == i) throw bad("empty host name");
      if (list.substr(i, end - i).find(']') != std::string_view::npos) throw bad("']' without '['");
      add(std::string(list.substr(i, end - i)));
      i = end + 1;
      continue;
    }
    const std::size_t close = list.find(']', open);
    if (close == std::string_view::npos) throw bad("'[' without ']'");
    const std::string_view ranges = list.substr(open + 1, close - open - 1);
    if (ranges.find('[') != std::string_view::npos) throw bad("nested '['");
    std::size_t end = list.find(',', close);
    if (end == std::string_view::npos) end = list.size();
    const std::string prefix(list.substr(i, open - i));
    const std::string suffix(list.substr(close + 1, end - close - 1));
    if (suffix.find_first_of("[]") != std::string::npos) throw bad("more than one bracket group in a host name");
    if (ranges.empty()) throw bad("empty brackets");
    std::size_t r = 0;
    while (r <= ranges.size()) {
      std::size_t comma = ranges.find(',', r);
      if (comma == std::string_view::npos) comma = ranges.size();
      const std::string_view range = ranges.substr(r, comma - r);
      const std::size_t dash = range.find('-');
      const std::string_view lo_text = range.substr(0, dash);
      const std::string_view hi_text = dash == std::string_view::npos ? lo_text : range.substr(dash + 1);
      auto number = [&](std::string_view t) {
        unsigned long long v = 0;
        const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (t.empty() || ec != std::errc() || ptr != t.data() + t.size()) throw bad(fmt::format("bad range '{}'", range));
        return v;
      };
      const unsigned long long lo = number(lo_text), hi = number(hi_text);
      if (hi < lo) throw bad(fmt::format("range '{}' runs backwards", range));
      if (hi - lo >= max_hosts) throw bad(fmt::format("more than {} hosts", max_hosts));
      // Slurm pads every number of a range to the width of its lower bound as written ("01-10").
      const std::size_t width = lo_text.size();
      for (unsigned long long v = lo; v <= hi; ++v) add(fmt::format("{}{:0{}}{}", prefix, v, width, suffix));
      r = comma + 1;
    }
    i = end + 1;
  }
  if (hosts.empty()) throw bad("no hosts");
  return hosts;
}

}  // namespace hf::dist
