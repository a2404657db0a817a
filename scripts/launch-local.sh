#!/usr/bin/env bash
# Starts N ranks of a command on this machine with torchrun's environment (RANK, WORLD_SIZE,
# LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT): data-parallel hf-train for a user
# without Slurm. Each rank runs in its own session, so a terminal's Ctrl-C reaches it once, through
# this script; SIGTERM, SIGUSR1 and SIGINT are forwarded to every rank (hf-train saves and exits 75).
# Exits with the worst rank's code: any failure over 75 (preempted, retry) over 0; between two
# failures, the larger code.
#
# Usage: scripts/launch-local.sh N -- COMMAND [ARGS...]
#   MASTER_PORT   rendezvous port (default: a free one);  MASTER_ADDR  default 127.0.0.1
#   OMP_NUM_THREADS  per rank, default: the cores divided among the ranks (at least 1)
# Example: scripts/launch-local.sh 2 -- build/bin/hf-train --model M --data D --output-dir run/ --resume auto
set -euo pipefail

usage() { printf 'usage: %s N -- COMMAND [ARGS...]\n' "$(basename "$0")" >&2; exit 64; }
[[ $# -ge 3 && "${2:-}" == "--" ]] || usage
n=$1
shift 2
[[ "$n" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "launch-local.sh: error: N must be a positive integer, got '$n'" >&2; exit 64; }

if [[ -z "${MASTER_PORT:-}" ]]; then
  # Port 0 makes the kernel choose a free port; the few microseconds until rank 0 binds it are a race
  # only with another launcher picking the very same port.
  MASTER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT WORLD_SIZE=$n LOCAL_WORLD_SIZE=$n
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
  cores=$(nproc)
  export OMP_NUM_THREADS=$(( cores / n > 0 ? cores / n : 1 ))
fi

pids=()
for ((r = 0; r < n; r++)); do
  RANK=$r LOCAL_RANK=$r setsid "$@" &
  pids+=("$!")
done

interrupted=0
# shellcheck disable=SC2317  # called from the traps below
forward() {
  interrupted=1
  for p in "${pids[@]}"; do kill -s "$1" "$p" 2>/dev/null || true; done
}
trap 'forward TERM' TERM
trap 'forward USR1' USR1
trap 'forward INT' INT

worst=0
for p in "${pids[@]}"; do
  code=
  while :; do
    interrupted=0
    set +e
    wait "$p"
    status=$?
    set -e
    # The signal came after this wait had the rank's status: that status stands.
    if ((status == 127)) && [[ -n "$code" ]]; then break; fi
    code=$status
    # A forwarded signal interrupts `wait` (status 128+N) while the rank runs on: wait again.
    ((interrupted)) || break
  done
  if ((code != 0)) && { ((worst == 0)) || ((worst == 75)) || ((code != 75 && code > worst)); }; then
    worst=$code
  fi
done
exit "$worst"
