// dist: rank and rendezvous from torchrun's or Slurm's environment, Slurm host lists.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "core/error.h"
#include "dist/dist.h"

namespace {

using Vars = std::map<std::string, std::string>;

std::optional<hf::dist::Placement> from(const Vars& vars) {
  return hf::dist::placement_from_env([&](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  });
}

std::string usage_message(const Vars& vars) {
  try {
    from(vars);
  } catch (const hf::Error& e) {
    CHECK(e.kind() == hf::ErrorKind::kUsage);
    return e.what();
  }
  FAIL("no error");
  return "";
}

using Hosts = std::vector<std::string>;

}  // namespace

TEST_CASE("dist: no launcher variables means one process") {
  CHECK_FALSE(from({}));
  CHECK_FALSE(from({{"RANK", "0"}, {"WORLD_SIZE", "1"}}));
  CHECK_FALSE(from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_JOB_NODELIST", "n1"}}));
  CHECK_FALSE(from({{"SLURM_JOB_ID", "77"}}));  // an allocation without a task step
}

TEST_CASE("dist: torchrun variables") {
  const auto p = from({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                       {"MASTER_ADDR", "10.0.0.5"}, {"MASTER_PORT", "29500"}});
  REQUIRE(p);
  CHECK(p->rank == 3);
  CHECK(p->world_size == 4);
  CHECK(p->local_rank == 1);
  CHECK(p->local_world_size == 2);
  CHECK(p->master_addr == "10.0.0.5");
  CHECK(p->master_port == 29500);
  CHECK(p->source == "torchrun");
  // Without local values every rank is on this machine; the master defaults to loopback.
  const auto q = from({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1234"}});
  REQUIRE(q);
  CHECK(q->local_rank == 1);
  CHECK(q->local_world_size == 2);
  CHECK(q->master_addr == "127.0.0.1");
}

TEST_CASE("dist: torchrun variables take precedence over Slurm's") {
  const auto p = from({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1234"}, {"SLURM_PROCID", "0"},
                       {"SLURM_NTASKS", "8"}, {"SLURM_JOB_NODELIST", "n1"}, {"SLURM_JOB_ID", "5"}});
  REQUIRE(p);
  CHECK(p->source == "torchrun");
  CHECK(p->world_size == 2);
}

TEST_CASE("dist: Slurm variables") {
  const auto p = from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                       {"SLURM_TASKS_PER_NODE", "4(x2)"}, {"SLURM_JOB_NODELIST", "gpu[07-08]"}, {"SLURM_JOB_ID", "123456"}});
  REQUIRE(p);
  CHECK(p->rank == 5);
  CHECK(p->world_size == 8);
  CHECK(p->local_rank == 1);
  CHECK(p->local_world_size == 4);
  CHECK(p->master_addr == "gpu07");
  CHECK(p->master_port == 20000 + 123456 % 10000);
  CHECK(p->source == "slurm");
  const auto q = from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "a,b"},
                       {"SLURM_JOB_ID", "9"}, {"MASTER_PORT", "4000"}, {"MASTER_ADDR", "head"}});
  REQUIRE(q);
  CHECK(q->master_port == 4000);
  CHECK(q->master_addr == "head");
}

TEST_CASE("dist: malformed launcher variables name the variable") {
  CHECK(usage_message({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}).find("RANK") != std::string::npos);
  CHECK(usage_message({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}).find("RANK: rank 2") !=
        std::string::npos);
  CHECK(usage_message({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_PORT") != std::string::npos);
  CHECK(usage_message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}).find("MASTER_PORT") !=
        std::string::npos);
  CHECK(usage_message({{"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}).find("RANK") != std::string::npos);
  CHECK(usage_message({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_ID", "1"}}).find("SLURM_JOB_NODELIST") !=
        std::string::npos);
  CHECK(usage_message({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "a"}}).find("SLURM_JOB_ID") !=
        std::string::npos);
}

TEST_CASE("dist: Slurm node lists expand as Slurm does") {
  using hf::dist::expand_nodelist;
  CHECK(expand_nodelist("node1") == Hosts{"node1"});
  CHECK(expand_nodelist("node[01-03,7],gpu5") == Hosts{"node01", "node02", "node03", "node7", "gpu5"});
  CHECK(expand_nodelist("a,b[8-10]") == Hosts{"a", "b8", "b9", "b10"});
  CHECK(expand_nodelist("rack[1-2]-ib") == Hosts{"rack1-ib", "rack2-ib"});
  CHECK(expand_nodelist("n[098-101]") == Hosts{"n098", "n099", "n100", "n101"});
  CHECK(expand_nodelist("x[3]") == Hosts{"x3"});
  for (const char* bad : {"", "n[1-2", "n1-2]", "n[2-1]", "n[]", "n[a-b]", "n[1-2][3]", ",a", "n[[1]]"})
    CHECK_THROWS_AS(expand_nodelist(bad), hf::Error);
  CHECK_THROWS_AS(expand_nodelist("n[0-999999999]"), hf::Error);  // bounded, not a billion names
  CHECK(expand_nodelist("n[1-4]", 4).size() == 4);
  CHECK_THROWS_AS(expand_nodelist("n[1-4],m", 4), hf::Error);
}

TEST_CASE("dist: one GPU per local rank") {
  using hf::dist::device_for_rank;
  hf::dist::Placement p;
  p.local_rank = 3;
  CHECK(device_for_rank("auto", p, true) == "cuda:3");
  CHECK(device_for_rank("cuda", p, true) == "cuda:3");
  CHECK(device_for_rank("cuda:1", p, true) == "cuda:1");
  CHECK(device_for_rank("auto", p, false) == "auto");
  CHECK(device_for_rank("cpu", p, true) == "cpu");
  CHECK(device_for_rank("auto", std::nullopt, true) == "auto");
}
