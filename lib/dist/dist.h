// Where this process sits in a data-parallel job: rank, world size, local rank and the rendezvous
// address, read from the environment a launcher leaves (torchrun's names or Slurm's). No torch here:
// the communicator over c10d is communicator.h.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hf::dist {

struct Placement {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // picks the GPU on a node
  int local_world_size = 1;  // ranks on this node (thread budget)
  std::string master_addr;   // host of rank 0, where the rendezvous store listens
  int master_port = 0;
  std::string source;  // "torchrun" or "slurm", for the start-up log line
};

// Reads a variable; nullopt when unset or empty (lib/core's env() in production, a map in tests).
using EnvReader = std::function<std::optional<std::string>(const char*)>;

// torchrun-style (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) when
// RANK and WORLD_SIZE are set, else Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
// SLURM_NTASKS_PER_NODE or SLURM_TASKS_PER_NODE, master = first host of SLURM_JOB_NODELIST, port
// = MASTER_PORT or one derived from SLURM_JOB_ID) when SLURM_PROCID and SLURM_NTASKS are set and
// the job has more than one task; nullopt otherwise (one process, today's behaviour). A one-task
// Slurm job is also nullopt: an sbatch shell that runs hf-train directly is a single process.
// Throws Error(kUsage) naming the variable when one is malformed or out of range.
std::optional<Placement> placement_from_env(const EnvReader& env);

// Slurm's hostlist syntax expanded in order: "node[01-03,7],gpu5" -> node01 node02 node03 node7
// gpu5 (zero padding kept as written). Brackets do not nest; one bracket group per host name
// prefix, as Slurm writes node lists. Throws Error(kUsage) on unbalanced brackets, a range that
// runs backwards, or more than `max_hosts` names (a bound on a hostile value).
std::vector<std::string> expand_nodelist(std::string_view list, std::size_t max_hosts = 65536);

// The rendezvous port of a Slurm job: 20000 + job id mod 10000, so two jobs sharing a node (and
// the requeued job itself) get a fixed port no other job of the last 10000 collides with.
int port_for_job(long long job_id);

// The device of a rank: "auto" and "cuda" become cuda:<local rank> in a job of several ranks on a
// machine with CUDA (one process per GPU); anything else is kept as asked.
std::string device_for_rank(const std::string& requested, const std::optional<Placement>& where, bool cuda_available);

}  // namespace hf::dist
