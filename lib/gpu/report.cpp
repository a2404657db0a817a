// Report rendering: the JSON object (schema_version 1, documented in tools/gpu-check/README.md and
// tools/gpu-check/report.schema.json) and the human text form.
#include "gpu/report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace hf::gpu {

namespace {

using nlohmann::json;

json or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

template <typename T>
json or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string on_off(const std::optional<bool>& v) {
  if (!v) return "n/a";
  return *v ? "on" : "off";
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace

const char* status_name(Status s) {
  switch (s) {
    case Status::kPass: return "pass";
    case Status::kFail: return "fail";
    case Status::kSkip: return "skip";
  }
  return "fail";
}

bool Report::passed() const {
  for (const auto& c : checks)
    if (c.status == Status::kFail) return false;
  return true;
}

std::string to_json(const Report& r) {
  json devices = json::array();
  for (const auto& d : r.devices) {
    devices.push_back({{"index", d.index},
                       {"name", d.name},
                       {"pci_bus_id", d.pci_bus_id},
                       {"compute_capability", fmt::format("{}.{}", d.cc_major, d.cc_minor)},
                       {"sm_count", d.sm_count},
                       {"memory_total_bytes", d.memory_total},
                       {"memory_free_bytes", or_null(d.memory_free)},
                       {"ecc", or_null(d.ecc)},
                       {"persistence_mode", or_null(d.persistence_mode)},
                       {"mig_mode", or_null(d.mig_mode)}});
  }
  json checks = json::array();
  for (const auto& c : r.checks) {
    json values = json::object();
    for (const auto& [k, v] : c.values) values[k] = v;
    checks.push_back({{"name", c.name},
                      {"device", c.device >= 0 ? json(c.device) : json(nullptr)},
                      {"status", status_name(c.status)},
                      {"seconds", c.seconds},
                      {"detail", c.detail},
                      {"values", values}});
  }
  json j = {{"schema_version", 1},
            {"tool", "gpu-check"},
            {"hfkit_version", r.hfkit_version},
            {"build", {{"cuda", r.built_with_cuda}, {"cuda_runtime", or_null(r.cuda_runtime)},
                       {"cuda_archs", or_null(r.cuda_archs)}}},
            {"driver", {{"loaded", r.driver_loaded}, {"library", or_null(r.driver_library)},
                        {"version", or_null(r.driver_version)}, {"cuda_version", or_null(r.driver_cuda_version)}}},
            {"nvml", {{"loaded", r.nvml_loaded}, {"error", or_null(r.nvml_error)}}},
            {"gpu_available", r.gpu_available},
            {"reason", or_null(r.reason)},
            {"devices", devices},
            {"checks", checks},
            {"passed", r.passed()}};
  // Replace invalid UTF-8 (a driver's error text) instead of throwing.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string to_text(const Report& r) {
  std::string s = fmt::format("gpu-check (hfkit {}): ", r.hfkit_version);
  s += r.built_with_cuda ? fmt::format("CUDA runtime {}, archs {}\n", r.cuda_runtime, r.cuda_archs)
                         : std::string("built without CUDA\n");
  if (r.driver_loaded) {
    s += fmt::format("driver  {} (supports CUDA {}) {}\n", r.driver_version.empty() ? "?" : r.driver_version,
                     r.driver_cuda_version.empty() ? "?" : r.driver_cuda_version, r.driver_library);
  }
  if (!r.gpu_available) s += fmt::format("gpu     none: {}\n", r.reason);
  for (const auto& d : r.devices) {
    std::string memory = d.memory_free ? fmt::format("{:.1f}/{:.1f} GiB free", *d.memory_free / kGiB, d.memory_total / kGiB)
                                       : fmt::format("{:.1f} GiB", d.memory_total / kGiB);
    s += fmt::format("device {}  {}  sm_{}{}  {} SMs  {}  ECC {}  {}  persistence {}  MIG {}\n", d.index, d.name,
                     d.cc_major, d.cc_minor, d.sm_count, memory,
                     on_off(d.ecc), d.pci_bus_id, on_off(d.persistence_mode), on_off(d.mig_mode));
  }
  int counts[3] = {0, 0, 0};
  for (const auto& c : r.checks) {
    ++counts[static_cast<int>(c.status)];
    std::string where = c.device >= 0 ? fmt::format("dev{} ", c.device) : "";
    s += fmt::format("{:<4}  {:<22} {:8.3f} s  {}\n", c.status == Status::kPass ? "PASS" : c.status == Status::kFail ? "FAIL" : "SKIP",
                     where + c.name, c.seconds, c.detail);
  }
  if (r.checks.empty())
    s += "result: PASS (no GPU: nothing to check)\n";
  else
    s += fmt::format("result: {} ({} passed, {} failed, {} skipped)\n", r.passed() ? "PASS" : "FAIL", counts[0],
                     counts[1], counts[2]);
  return s;
}

}  // namespace hf::gpu
